"""The progressive schedule of Section 4.1, as pure functions of the epoch (so resume is exact).

Epochs [0, constant_epochs): constant learning rate while the clip length steps through
`seq_lengths` every `seq_length_every` epochs (paper: 6 -> 12 -> 24 -> 30, every 5 epochs, 20 epochs).
Epochs [constant_epochs, constant_epochs + decay_epochs): the learning rate falls linearly towards 0
(paper: 20 more epochs), at the longest clip length. The resolution stage is a second run that
starts from this one's checkpoint (model.init_from) with its own schedule (paper: 8 epochs).
"""
from __future__ import annotations

from .options import ScheduleOptions


class Schedule:
    def __init__(self, opts: ScheduleOptions):
        self.opts = opts

    @property
    def total_epochs(self) -> int:
        return self.opts.constant_epochs + self.opts.decay_epochs

    def seq_length(self, epoch: int) -> int:
        lengths = self.opts.seq_lengths
        return int(lengths[min(epoch // self.opts.seq_length_every, len(lengths) - 1)])

    def lr_factor(self, epoch: int) -> float:
        """1 during the constant phase, then (D - k) / (D + 1) in decay epoch k = 0..D-1."""
        c, d = self.opts.constant_epochs, self.opts.decay_epochs
        if epoch < c:
            return 1.0
        return max(0.0, 1.0 - (epoch - c + 1) / (d + 1))

    def stage(self, epoch: int) -> str:
        return "progressive" if epoch < self.opts.constant_epochs else "decay"
