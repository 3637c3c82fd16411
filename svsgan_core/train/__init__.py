"""Training: options, the progressive schedule, EMA, checkpoints, data-parallel helpers and the loop.

Networks live in svsgan_core.models, losses in svsgan_core.losses; this package only trains them.
"""
from svsgan_core.train.options import TrainOptions, load_options
from svsgan_core.train.schedule import Schedule
from svsgan_core.train.trainer import Trainer, new_run_dir

__all__ = ["Schedule", "TrainOptions", "Trainer", "load_options", "new_run_dir"]
