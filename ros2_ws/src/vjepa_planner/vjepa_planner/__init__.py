"""Planner node: CEM with the V-JEPA 2-AC world model toward a goal image, with safety limits and robot
adapters.
"""
