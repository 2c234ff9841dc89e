"""Rosbag recording, datasets, V-JEPA 2 pretraining and action-conditioned post-training."""
