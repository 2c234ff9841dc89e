"""Headless PyBullet Franka Panda with franka_ros2-shaped interfaces."""

from __future__ import annotations
