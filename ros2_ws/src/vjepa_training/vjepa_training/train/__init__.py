"""V-JEPA 2 training (``vjepa-train``): pretraining and action-conditioned post-training, one GPU to many.

Modules:
    config        strict dataclass configs, YAML loading, resolved config saved in the run directory
    masks         multiblock 3D masks (8 x 0.15 + 2 x 0.7 spatial scale, full temporal extent)
    schedules     warmup / constant / cooldown LR, weight decay and EMA schedules (functions of the step)
    datasets      video files (PyAV), image folders, clip shards; the one loader (resumable global order)
    distributed   torchrun world, DDP (gloo/NCCL), FSDP2
    checkpointing atomic latest.pt + periodic copies in the released layout, full resume state
    metrics       metrics.csv, TensorBoard, progress bar, collapse monitor
    engine        the optimisation loop shared by both tasks
    pretrain      V-JEPA 2 mask-denoising pretraining
    posttrain     V-JEPA 2-AC teacher-forcing + rollout post-training
    plot          PNG curves of a run
"""
