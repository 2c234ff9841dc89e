"""Encoder node: camera images to V-JEPA 2 latents."""
