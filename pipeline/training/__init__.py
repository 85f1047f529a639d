"""Training of multi-exit classifiers: options, loss, augmentation, schedules, weight averaging, the loop.

    python -m pipeline.training --data DATA --epochs 60 --out models/msdnet_cifar10.pt [--resume]

The package runs on the host only (it needs torch); nothing on the device path imports it.
"""

from pipeline.training.options import TrainOptions

__all__ = ["TrainOptions"]
