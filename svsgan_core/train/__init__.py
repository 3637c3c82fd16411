"""Training: options, the progressive schedule, EMA, checkpoints, data-parallel helpers and the loop.

Networks live in svsgan_core.models, losses in svsgan_core.losses; this package only trains them.
"""
from .options import TrainOptions, load_options
from .schedule import Schedule
from .trainer import Trainer, new_run_dir

__all__ = ["Schedule", "TrainOptions", "Trainer", "load_options", "new_run_dir"]
