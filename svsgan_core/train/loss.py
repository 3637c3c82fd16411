"""What one chunk of frames computes: every G, D_I and D_V call of a training step (Section 4.1).

As in NVlabs' StyleGAN3/EDM training code, the loop only schedules phases and steps optimizers;
this object decides what each phase runs, on what, and what is detached. It holds the networks as
the loop wraps them (DistributedDataParallel under torchrun, the plain modules otherwise) and calls
them only through those wrappers, so DDP sees every forward whose gradients it reduces:

  G phase  G (through its wrapper) on the chunk, then D_I and D_V through `.module`: D scores the
           fake frames for G's loss (equation 7) without its reducer taking part, while D's
           parameters are frozen by the loop.
  D phase  D_I and D_V through their wrappers on real and detached fake frames (equations 1, 3,
           LabelMix); G is not run again.

With `ModelConfig.instance_edges` every call also gets the frames' boundary maps (the batch's `edges`,
B x T x 1 x H x W): G per frame and the previous frame's, D_I as its edge channel, D_V per window.
Without the knob `edges` is None everywhere and every call is what it was. With
`ModelConfig.palette_instances` G also gets the palette slots of each frame and its previous one, from
the clip's instance ids.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..losses.oasis import class_balance_weights, class_counts, labelmix_loss, labelmix_mask
from ..losses.total import SVSGANLoss
from ..models import VideoDiscriminators
from ..models.generator import GeneratorOutput, autoregress
from . import distributed


# What each seeded draw is for, mixed into its seed so that no two kinds of draw share a stream.
SALT_SHUFFLE = 0x5A3  # the per-epoch sample order
SALT_REFERENCE = 0x8EF  # the per-step choice of a real (reference) or generated first frame
SALT_LABELMIX = 0x1AB  # LabelMix masks
SALT_GROW = 0x6B0  # the new layers of a resolution stage's grow(), the same for the raw and the EMA generator


def mix_seed(*values: int) -> int:
    """A 63-bit seed from a tuple of integers (no collisions between nearby tuples)."""
    return int(np.random.SeedSequence([int(v) & 0xFFFFFFFF for v in values]).generate_state(2, np.uint64)[0] >> 1)


class VideoWindows(nn.Module):
    """D_V on every window of each temporal scale that contains at least one new frame.

    One forward scores fake and real windows, so a DDP wrapper around it sees a single forward per
    D update; which scales fit changes from chunk to chunk (early chunks are short), so its wrapper
    finds unused parameters instead of assuming a static graph.
    """

    def __init__(self, d_video: VideoDiscriminators):
        super().__init__()
        self.d_video = d_video

    def history_length(self) -> int:
        """Frames of earlier chunks the longest window reaches back to."""
        return max(self.d_video.span(k) for k in range(len(self.d_video.strides))) - 1

    def forward(self, seq_fake: torch.Tensor, seq_real: torch.Tensor, seq_lab: torch.Tensor, new: int,
                real_grad: bool = True, seq_edges: torch.Tensor | None = None) -> tuple[list, list]:
        dv = self.d_video
        out_fake, out_real = [], []
        total = seq_fake.shape[1]
        for k, net in enumerate(dv.nets):
            span = dv.span(k)
            first = max(0, total - new - (span - 1))
            if total - first < span:
                continue
            cond = (seq_lab[:, first:],) if seq_edges is None else (seq_lab[:, first:], seq_edges[:, first:])
            f, *y = dv.clips(k, seq_fake[:, first:], *cond)
            r, *_ = dv.clips(k, seq_real[:, first:], *cond)
            out_fake.append(net(f, *y))
            with torch.set_grad_enabled(real_grad and torch.is_grad_enabled()):
                out_real.append(net(r, *y))
        return out_fake, out_real


@dataclass
class Chunk:
    """Frames c0..c1-1 of a batch of clips: what both phases of one update see."""
    c0: int
    outs: list[GeneratorOutput]
    images: torch.Tensor  # the whole clip, B x T x 3 x H x W (the flow terms look one frame back)
    labels: torch.Tensor
    flow: torch.Tensor | None
    conf: torch.Tensor | None
    fake: torch.Tensor  # B x F x 3 x H x W, attached to G
    seq_fake: torch.Tensor  # earlier chunks' detached frames + fake, for D_V's windows
    seq_real: torch.Tensor
    seq_lab: torch.Tensor
    alpha: torch.Tensor  # class-balance weights over the global batch
    step: int
    edges: torch.Tensor | None = None  # the whole clip's boundary maps, B x T x 1 x H x W (instance_edges only)
    seq_edges: torch.Tensor | None = None  # D_V's windows' boundary maps, like seq_lab
    extra: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return len(self.outs)

    @property
    def real(self) -> torch.Tensor:
        return self.images[:, self.c0:self.c0 + self.frames]

    @property
    def lab(self) -> torch.Tensor:
        return self.labels[:, self.c0:self.c0 + self.frames]

    @property
    def edge_flat(self) -> torch.Tensor | None:
        """The chunk's frames' boundary maps, (B F) x 1 x H x W like fake.flatten(0, 1), or None."""
        return None if self.edges is None else self.edges[:, self.c0:self.c0 + self.frames].flatten(0, 1)


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (or the module itself)."""
    return getattr(module, "module", module)


class TrainingLoss:
    """SVS-GAN's G and D objectives for one chunk, StyleGAN3-style `accumulate_gradients(phase, ...)`.

    G, D_I: the (possibly DDP-wrapped) networks; D_V: a (possibly wrapped) VideoWindows.
    """

    def __init__(self, G: nn.Module, D_I: nn.Module, D_V: nn.Module, criteria: SVSGANLoss, num_classes: int,
                 loss_opts, seed: int, info: distributed.DistInfo, autocast=contextlib.nullcontext):
        self.G, self.D_I, self.D_V = G, D_I, D_V
        self.criteria = criteria
        self.num_classes = num_classes
        self.opts = loss_opts
        self.seed = seed
        self.info = info
        self.autocast = autocast

    def generate(self, labels: torch.Tensor, c0: int, c1: int, prev: torch.Tensor | None,
                 edges: torch.Tensor | None = None, instances: torch.Tensor | None = None) -> list[GeneratorOutput]:
        """G on frames c0..c1-1, each from the previous generated frame, detached (no gradient through time).
        instances: the clip's instance ids, B x T x H x W (`palette_instances` models only): the objects of
        I_{i-1} that get their own palette colour in frame i."""
        with self.autocast():
            return autoregress(self.G, unwrap(self.G).cfg, labels, prev, c0, c1, edges, instances)

    def chunk(self, outs, c0: int, images, labels, flow, conf, history: dict[str, list], step: int,
              edges: torch.Tensor | None = None) -> Chunk:
        fake = torch.stack([o.image for o in outs], 1)
        c1 = c0 + len(outs)
        real, lab = images[:, c0:c1], labels[:, c0:c1]
        n = self.num_classes
        alpha = class_balance_weights(distributed.all_reduce_sum(class_counts(lab.flatten(0, 1), n), self.info))

        def sequence(key: str, current: torch.Tensor) -> torch.Tensor:
            past = history[key]
            return torch.cat([torch.stack(past, 1), current], 1) if past else current

        return Chunk(c0, outs, images, labels, flow, conf, fake, sequence("fake", fake), sequence("real", real),
                     sequence("labels", lab), alpha, step, edges,
                     None if edges is None else sequence("edges", edges[:, c0:c1]))

    def accumulate_gradients(self, phase: str, chunk: Chunk, scaler: torch.amp.GradScaler) -> dict[str, torch.Tensor]:
        """Backward of phase "G" or "D"'s loss for `chunk`; returns its terms (and "<phase>_total")."""
        if phase == "G":
            terms = self._generator_terms(chunk)
        elif phase == "D":
            terms = self._discriminator_terms(chunk)
        else:
            raise ValueError(f"unknown phase {phase!r}")
        with self.autocast():
            total = self.criteria.total(terms)
        scaler.scale(total).backward()
        terms[f"{phase}_total"] = total
        return terms

    def _generator_terms(self, c: Chunk) -> dict[str, torch.Tensor]:
        """Equation (7): D_I and D_V score G's frames through `.module` (no D reducer, D frozen)."""
        d_image, d_video = unwrap(self.D_I), unwrap(self.D_V)
        fake_flat, real_flat, lab_flat = c.fake.flatten(0, 1), c.real.flatten(0, 1), c.lab.flatten(0, 1)
        edge_flat = c.edge_flat
        with self.autocast():
            d_fake = d_image(fake_flat, edge_flat)
            real_feats = None
            if self.opts.fm > 0:
                with torch.no_grad():
                    real_feats = d_image(real_flat, edge_flat)[1]
            terms = self.criteria.generator_image(fake_flat, real_flat, lab_flat, c.alpha, d_fake, real_feats)
            with_prev = [j for j, o in enumerate(c.outs) if o.flow is not None]
            if with_prev:
                idx = [c.c0 + j for j in with_prev]

                def frames_at(x: torch.Tensor | None, shift: int = 0) -> torch.Tensor | None:
                    return None if x is None else torch.cat([x[:, i + shift] for i in idx])

                terms.update(self.criteria.generator_flow(
                    torch.cat([c.outs[j].flow for j in with_prev]), torch.cat([c.outs[j].occlusion_logits for j in with_prev]),
                    frames_at(c.images), frames_at(c.images, -1), frames_at(c.labels), frames_at(c.labels, -1),
                    frames_at(c.flow), frames_at(c.conf)))
            dv_fake, dv_real = d_video(c.seq_fake, c.seq_real, c.seq_lab, c.frames, real_grad=False,
                                       seq_edges=c.seq_edges)
            terms.update(self.criteria.generator_video(dv_fake, dv_real))
        return terms

    def _discriminator_terms(self, c: Chunk) -> dict[str, torch.Tensor]:
        """Equations (1) and (3) and LabelMix, on real and detached fake frames, through the D wrappers."""
        real_flat, lab_flat, edge_flat = c.real.flatten(0, 1), c.lab.flatten(0, 1), c.edge_flat
        fake_d = c.fake.flatten(0, 1).detach()
        with self.autocast():
            logits_real, _ = self.D_I(real_flat, edge_flat)
            logits_fake, _ = self.D_I(fake_d, edge_flat)
            terms = self.criteria.discriminator_image(logits_real, logits_fake, lab_flat, c.alpha)
            if self.opts.labelmix > 0:
                mask = self.labelmix_masks(lab_flat, c.step, c.c0, c.frames)
                mixed = mask * real_flat + (1 - mask) * fake_d
                logits_mixed, _ = self.D_I(mixed, edge_flat)
                terms["D_labelmix"] = labelmix_loss(logits_mixed, logits_real, logits_fake, mask)
            dv_fake, dv_real = self.D_V(c.seq_fake.detach(), c.seq_real, c.seq_lab, c.frames, seq_edges=c.seq_edges)
            terms.update(self.criteria.discriminator_video(dv_real, dv_fake))
        return terms

    def labelmix_masks(self, lab: torch.Tensor, step: int, c0: int, frames: int) -> torch.Tensor:
        """One LabelMix mask per (sample, frame), drawn from (seed, step, frame, global sample index)."""
        b = lab.shape[0] // frames
        masks = []
        for s in range(b):
            for j in range(frames):
                g = torch.Generator().manual_seed(mix_seed(self.seed, step, c0 + j, self.info.rank * b + s, SALT_LABELMIX))
                masks.append(labelmix_mask(lab[s * frames + j: s * frames + j + 1], self.num_classes, g))
        return torch.cat(masks)
