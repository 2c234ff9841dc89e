"""Pure-Python V-JEPA 2 core (no rclpy): models, checkpoints, preprocessing, pose math, CEM planning,
inference backends, export.
"""
