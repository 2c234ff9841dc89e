"""Headless PyBullet Franka Panda with franka_ros2-shaped interfaces."""
