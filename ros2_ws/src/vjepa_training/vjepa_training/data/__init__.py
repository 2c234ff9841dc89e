"""Recording and dataset pipeline of vjepa_training (ROS-free): bags, alignment, shards, DROID, torch datasets.

Modules:
    bagio      rosbag2 writing with definitions and flushes, reading with the bag's own definitions, recovery
    decode     exact header stamps, resize/crop, DecodeError (messages -> arrays: vjepa_core.imgmsg / msgconv)
    align      fixed-rate frame sampling and nearest-before state alignment, gap splitting
    shards     on-disk format (memory-mappable .npy shards + index.json)
    build      bags -> dataset (``vjepa-dataset build``)
    droid      DROID raw episodes -> dataset (``vjepa-dataset import-droid``)
    torch_data the clip reader (frames or cached latents, states, actions); loaded by train.datasets
    latents    frozen-encoder token cache (``vjepa-dataset encode``), keyed by model, section, size, norm
    recording  episode bag writer used by ``recorder_node``
    synthetic  synthetic recordings with ground truth (tests, benchmarks)

Submodules are imported on demand so that, e.g., the recorder does not import torch.
"""

from __future__ import annotations
