"""The SVS-GAN training loop (Section 4.1): autoregressive over clips, progressive, data-parallel.

One step takes a batch of clips (B x T frames). Frame 0 is either the real frame (a reference image,
as in the paper's evaluation; probability `schedule.reference_prob`, decided per global batch) or
generated in first-frame mode. Every later frame is generated from the previous *generated* frame,
detached, so gradients never run through time. The clip is cut into chunks of
`optim.frames_per_step` frames; each chunk gets one G update and one D update (D_I on its frames,
D_V on 3-frame windows that reach back into the previous chunk's detached frames), which bounds
memory at any clip length (V2V does the same).

Randomness in the loop (reference or first-frame mode, LabelMix masks) is drawn from (seed, step,
frame, global sample index) and the data's from (seed, epoch, index), so a resumed run, or the same
global batch split over several processes, makes the same decisions.

Split as NVlabs' StyleGAN3/EDM training code is: train/loss.py (TrainingLoss) makes every network
call of a chunk; Trainer.train_step is the loop over chunks and phases (optimizer steps, EMA);
train/state.py saves and resumes; train/distributed.py joins the process group and wraps the
networks in DistributedDataParallel.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..data.datasets import build_dataset
from ..data.instances import boundary_map
from ..errors import CheckpointError, InputError
from ..losses.total import SVSGANLoss
from ..models import OASISDiscriminator, SVSGenerator, VideoDiscriminators
from ..metrics.pixels import ClassMeanBaseline
from ..models.config import PRECISIONS, ModelConfig
from ..models.generator import autoregress, valid_ids
from ..runtime import preflight
from ..runtime.checkpoint import GENERATOR_NAME, check_state_dict, checkpoint_dir, read_config, read_weights
from . import distributed
from .ema import EMA
from .loss import SALT_GROW, SALT_REFERENCE, SALT_SHUFFLE, TrainingLoss, VideoWindows, mix_seed, unwrap
from .monitor import RunLog, side_by_side, to_uint8, write_video
from .options import TrainOptions, save_options
from .schedule import Schedule
from .state import resume_training, save_training, training_counters


class ShardedBatchSampler(Sampler):
    """Epoch-seeded permutation cut into global batches; process r takes its slice of each.

    Global batch k is perm[k G : (k+1) G], G = batch_size x world_size; incomplete batches are
    dropped so every process runs the same number of equal steps. `start` skips batches already done.
    """

    def __init__(self, n: int, batch_size: int, info: distributed.DistInfo, seed: int, epoch: int, start: int = 0):
        self.n, self.b, self.info = n, batch_size, info
        self.seed, self.epoch, self.start = seed, epoch, start

    def __len__(self) -> int:
        return max(0, self.n // (self.b * self.info.world_size) - self.start)

    def __iter__(self):
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, SALT_SHUFFLE))
        perm = torch.randperm(self.n, generator=g).tolist()
        gb = self.b * self.info.world_size
        for k in range(self.start, self.n // gb):
            lo = k * gb + self.info.rank * self.b
            yield perm[lo: lo + self.b]


def collate(items: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        out[key] = torch.stack(values) if torch.is_tensor(values[0]) else values
    return out


def new_run_dir(out_dir: str | Path, name: str) -> Path:
    """<out_dir>/<NNNNN>-<name>, one more than the highest number there (EDM style)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name.split("-", 1)[0]) for p in out.iterdir() if p.name.split("-", 1)[0].isdigit()]
    return out / f"{max(numbers, default=-1) + 1:05d}-{name}"


class Trainer:
    def __init__(self, opts: TrainOptions, run_dir: str | Path, info: distributed.DistInfo | None = None,
                 dataset=None, sample_dataset=None, vgg: torch.nn.Module | None = None):
        """`dataset` / `sample_dataset` / `vgg` default to what `opts` names (tests inject small ones)."""
        self.opts = opts
        self.info = info or distributed.DistInfo()
        self.device = self.info.device
        self.run_dir = Path(run_dir)
        self.cfg: ModelConfig = opts.model.config()
        # a typo (height: 40960, a channel width of 1e6) would allocate gigabytes before failing; training
        # needs more than this one-frame inference estimate, so passing it is necessary, not sufficient
        preflight.check(self.cfg, "the training config's model (model.preset + model.overrides)")
        self.schedule = Schedule(opts.schedule)
        self.amp_dtype = None
        if opts.optim.precision != "fp32":
            if self.device.type == "cuda":
                self.amp_dtype = PRECISIONS[opts.optim.precision]
            elif self.info.is_main:
                print(f"svsgan train: {opts.optim.precision} autocast is for CUDA; training in fp32 on {self.device}")

        self.dataset = dataset if dataset is not None else self._build_dataset(opts.data.root, train=True)
        self._sample_dataset = sample_dataset
        summary = getattr(self.dataset, "instance_summary", None)
        if self.info.is_main and summary:
            print(f"svsgan train: {summary}" + ("" if self.cfg.instance_edges or self.cfg.palette_instances else
                  " (the model reads no instance ids: model.overrides.instance_edges, palette_instances)"))

        torch.manual_seed(opts.run.seed)
        self.G = SVSGenerator(self.cfg).to(self.device)
        self.D_I = OASISDiscriminator(self.cfg.num_classes, self.cfg.d_channels, self.cfg.instance_edges).to(self.device)
        self.D_V = VideoDiscriminators(self.cfg).to(self.device)
        self.grown = 0  # SPADE levels grow() added to the lower stage (model.init_from): 0 = no fade-in
        lower_ema = None
        if opts.model.init_from:
            lower_ema = self._init_from_lower_stage(opts.model.init_from)
        elif self.G.class_colour is not None:
            self._init_class_colours()
        for m in (self.G, self.D_I, self.D_V):
            distributed.broadcast_buffers(m, self.info)
        self.ema = EMA(self.G, opts.optim.ema_decay)
        if lower_ema is not None:
            # the lower stage's average carries on, grown the same way (identical new layers): restarting
            # it from the raw weights would ship a noisier generator for the first thousands of steps
            self.ema.model.load_state_dict(lower_ema.state_dict())
            self.ema.updates = self.ema.warm_updates()
        self.criteria = SVSGANLoss(opts.loss, self.cfg.num_classes, vgg).to(self.device)
        # G leaves its flow net and image encoder idle in first-frame mode: unused parameters unless
        # every chunk has a frame with a previous one (frames_per_step >= 2 and clips of >= 2 frames)
        g_static = opts.optim.frames_per_step >= 2 and min(opts.schedule.seq_lengths) >= 2
        self.loss = TrainingLoss(distributed.wrap(self.G, self.info, find_unused=not g_static, static_graph=g_static),
                                 distributed.wrap(self.D_I, self.info, static_graph=True),
                                 distributed.wrap(VideoWindows(self.D_V), self.info, find_unused=True),
                                 self.criteria, self.cfg.num_classes, opts.loss, opts.run.seed, self.info,
                                 self._autocast)

        self.lr_g, self.lr_d = opts.optim.learning_rates()
        betas = tuple(opts.optim.betas)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=self.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(list(self.D_I.parameters()) + list(self.D_V.parameters()), lr=self.lr_d,
                                      betas=betas)
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=fp16)

        self.epoch = 0
        self.step_in_epoch = 0
        self.step = 0
        self.log: RunLog | None = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._t0 = time.time()
        self._cpu0 = time.process_time()

    # -- set-up ------------------------------------------------------------------------------------
    def _build_dataset(self, root: str, train: bool):
        options = dict(self.opts.data.options)
        # instance maps are read only for a model that conditions on them (data.options.with_instances wins)
        options.setdefault("with_instances", self.cfg.instance_edges or self.cfg.palette_instances > 0)
        if self.cfg.palette_instances and options["with_instances"]:
            options.setdefault("with_instance_ids", True)  # the objects' own palette colours need the ids
        if not train:
            options.update(augment=False, random_clips=False)
        return build_dataset(self.opts.data.kind, root, size=(self.cfg.height, self.cfg.width),
                             seq_len=self.schedule.seq_length(0), label_space=self.cfg.label_space,
                             with_flow=self.opts.data.with_flow and train, seed=self.opts.run.seed, **options)

    def _init_from_lower_stage(self, path: str) -> SVSGenerator | None:
        """Resolution stage: load the lower-resolution run's networks and grow() G into this model.

        Returns the lower stage's EMA generator grown the same way (None when the checkpoint has no
        separate training weights, i.e. the EMA is all there is). `self.grown` counts the grow() calls:
        only a grown model fades its new block in.
        """
        ckpt = checkpoint_dir(path)
        low_cfg, _ = read_config(ckpt)
        target = self.cfg.to_dict()
        has_train = (ckpt / "generator_train.safetensors").is_file()
        names = ["generator_train.safetensors", GENERATOR_NAME] if has_train else [GENERATOR_NAME]
        gens = []
        for name in names:
            gen = SVSGenerator(low_cfg)
            state = read_weights(ckpt, name)
            check_state_dict(gen, state, str(ckpt / name))
            gen.load_state_dict(state)
            gens.append(gen)
        grown = 0
        for _ in range(4):
            if gens[0].cfg.to_dict() == target or gens[0].cfg.height >= self.cfg.height:
                break
            seed = mix_seed(self.opts.run.seed, grown, SALT_GROW)
            for gen in gens:  # the same seed: the raw and the EMA generator get identical new layers
                torch.manual_seed(seed)
                gen.grow(img_channels=self.cfg.img_channels[0], sem_channels=self.cfg.sem_channels[0])
            grown += 1
        if gens[0].cfg.to_dict() != target:
            diff = sorted(k for k, v in target.items() if gens[0].cfg.to_dict().get(k) != v)
            raise CheckpointError(f"model.init_from {ckpt}: growing its {low_cfg.width}x{low_cfg.height} generator "
                                  f"does not give this run's model (differs in {', '.join(diff)})")
        self.grown = grown
        for gen in gens:
            gen.set_fade(0.0 if grown else 1.0)
        self.G = gens[0].to(self.device)
        for attr, file in (("D_I", "d_image"), ("D_V", "d_video")):
            f = ckpt / f"{file}.safetensors"
            if f.is_file():
                net = getattr(self, attr)
                sd = read_weights(ckpt, f.name)
                check_state_dict(net, sd, str(f))
                net.load_state_dict(sd)
        if self.info.is_main:
            print(f"svsgan train: resolution stage from {ckpt} ({low_cfg.width}x{low_cfg.height} -> "
                  f"{self.cfg.width}x{self.cfg.height}, {grown} level(s) grown"
                  f"{', fading in over schedule.fade_steps' if grown else ', no fade-in'})")
        return gens[1].to(self.device) if len(gens) > 1 else None

    @torch.no_grad()
    def _init_class_colours(self, clips: int = 64) -> None:
        """Start G's per-class colour at each class's mean colour in the training data (up to `clips`
        clips, their first frames): the first-frame output then begins as the class-mean painting, crisp
        at every class edge, and training adds what the labels cannot say. A data-dependent init, like
        setting an output bias to the data mean; every process computes the same from the same files."""
        baseline = ClassMeanBaseline()
        n = self.cfg.num_classes
        step = max(1, len(self.dataset) // clips)
        for index in range(0, len(self.dataset), step):
            item = self.dataset[index]
            image = item["images"][0].add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
            valid, ids = valid_ids(item["labels"][0], n, fill=n)  # the ignore label apart, as class n
            baseline.fit(image[None], ids[None].numpy())
        seen = torch.from_numpy(baseline.counts[:n] > 0)
        means = torch.from_numpy(baseline.means[:n].astype("float32")) / 127.5 - 1.0
        logits = torch.atanh(means.clamp(-0.95, 0.95)) * seen[:, None]
        # the one-hot's columns; the boundary map's column (instance_edges) stays at zero
        self.G.class_colour.weight[:, :n].copy_(logits.t()[:, :, None, None].to(self.G.class_colour.weight))

    def sample_dataset(self):
        if self._sample_dataset is None:
            root = self.opts.data.sample_root or self.opts.data.root
            self._sample_dataset = self._build_dataset(root, train=False)
        return self._sample_dataset

    def steps_per_epoch(self) -> int:
        return len(self.dataset) // (self.opts.optim.batch_size * self.info.world_size)

    def _begin_epoch(self, epoch: int) -> None:
        length = self.schedule.seq_length(epoch)
        self.dataset.set_sequence_length(length)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        if self.steps_per_epoch() < 1:
            raise InputError(f"the dataset has {len(self.dataset)} clips of {length} frames, fewer than one global "
                             f"batch ({self.opts.optim.batch_size} x {self.info.world_size} processes)")
        factor = self.schedule.lr_factor(epoch)
        for opt, lr in ((self.opt_g, self.lr_g), (self.opt_d, self.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * factor

    def _loader(self, epoch: int, start: int) -> DataLoader:
        sampler = ShardedBatchSampler(len(self.dataset), self.opts.optim.batch_size, self.info,
                                      self.opts.run.seed, epoch, start)
        workers = self.opts.data.num_workers
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                          pin_memory=self.device.type == "cuda", prefetch_factor=2 if workers else None)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- one step ----------------------------------------------------------------------------------
    def use_reference(self, step: int, frames: int) -> bool:
        """Frame 0 real (reference) or generated (first-frame mode), the same on every process."""
        if frames < 2:
            return False
        u = np.random.default_rng(mix_seed(self.opts.run.seed, step, SALT_REFERENCE)).random()
        return bool(u < self.opts.schedule.reference_prob)

    def train_step(self, batch: dict) -> dict[str, float]:
        """One batch of clips: per chunk of frames, a G update (then EMA) and a D update."""
        dev = self.device
        images = batch["images"].to(dev, non_blocking=True)
        labels = batch["labels"].to(dev, non_blocking=True)
        flow = batch["flow"].to(dev) if "flow" in batch else None
        conf = batch["flow_conf"].to(dev) if "flow_conf" in batch else None
        edges = None
        if self.cfg.instance_edges:  # B x T x 1 x H x W; a dataset without them: the labels' own edges
            edges = (batch["edges"].to(dev, non_blocking=True) if "edges" in batch
                     else boundary_map(labels).unsqueeze(2).float())
        instances = batch["instances"].to(dev, non_blocking=True) if "instances" in batch else None
        t = labels.shape[1]
        for m in (self.G, self.D_I, self.D_V):
            m.train()
        if self.grown:  # resolution stage after grow(): fade the new block in over schedule.fade_steps
            fade_steps = self.opts.schedule.fade_steps
            for g in (self.G, self.ema.model):
                g.set_fade(self.step / fade_steps if fade_steps else 1.0)
        reference = self.use_reference(self.step, t)
        hist_len = unwrap(self.loss.D_V).history_length()
        history: dict[str, list[torch.Tensor]] = {"fake": [], "real": [], "labels": []}
        if edges is not None:
            history["edges"] = []
        prev = None
        start = 0
        if reference:
            prev = images[:, 0]
            for key, v in (("fake", prev), ("real", prev), ("labels", labels[:, 0])):
                history[key].append(v)
            if edges is not None:
                history["edges"].append(edges[:, 0])
            start = 1
        sums: dict[str, list[float]] = {}
        phases = (("G", self.G, (self.D_I, self.D_V), self.opt_g, self.scaler_g),
                  ("D", None, (), self.opt_d, self.scaler_d))
        for c0 in range(start, t, self.opts.optim.frames_per_step):
            c1 = min(t, c0 + self.opts.optim.frames_per_step)
            outs = self.loss.generate(labels, c0, c1, prev, edges, instances)
            prev = outs[-1].image.detach()
            chunk = self.loss.chunk(outs, c0, images, labels, flow, conf, history, self.step, edges)
            for phase, trained, frozen, opt, scaler in phases:
                for m in frozen:
                    m.requires_grad_(False)
                opt.zero_grad(set_to_none=True)
                terms = self.loss.accumulate_gradients(phase, chunk, scaler)
                scaler.step(opt)
                scaler.update()
                if trained is self.G:
                    self.ema.update(self.G)
                for m in frozen:
                    m.requires_grad_(True)
                for k, v in terms.items():
                    sums.setdefault(k, []).append(float(v.detach()))
            for key, v in (("fake", torch.stack([o.image.detach() for o in outs], 1)),
                           ("real", images[:, c0:c1]), ("labels", labels[:, c0:c1]),
                           ("edges", None if edges is None else edges[:, c0:c1])):
                if v is not None:
                    history[key].extend(v.unbind(1))
                    del history[key][:-hist_len]
        scalars = {k: sum(v) / len(v) for k, v in sums.items()}  # each term over the updates that had it
        scalars["reference"] = float(reference)
        return scalars

    # -- the loop ----------------------------------------------------------------------------------
    def total_steps(self) -> int:
        total = 0
        for e in range(self.schedule.total_epochs):
            self.dataset.set_sequence_length(self.schedule.seq_length(e))
            total += self.steps_per_epoch()
        self.dataset.set_sequence_length(self.schedule.seq_length(self.epoch))
        if self.opts.schedule.max_steps is not None:
            total = min(total, self.opts.schedule.max_steps)
        return total

    def _done(self) -> bool:
        m = self.opts.schedule.max_steps
        return (m is not None and self.step >= m) or self.epoch >= self.schedule.total_epochs

    def train(self) -> Path:
        """Run (or continue) the schedule; returns the latest checkpoint folder."""
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.log = RunLog(self.run_dir, self.opts.log.tensorboard)
        total = self.total_steps()  # also fails now, not epochs later, if the data is too short for a clip length
        bar = None
        if self.info.is_main and self.opts.log.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc="svsgan train", unit="step",
                       dynamic_ncols=True)
        last_saved = -1
        try:
            while not self._done():
                self._begin_epoch(self.epoch)
                for batch in self._loader(self.epoch, self.step_in_epoch):
                    scalars = self.train_step(batch)
                    self.step += 1
                    self.step_in_epoch += 1
                    self._accumulate(scalars)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(epoch=self.epoch, T=self.dataset.seq_len if hasattr(self.dataset, "seq_len")
                                        else "", G=f"{scalars['G_total']:.3f}", D=f"{scalars['D_total']:.3f}",
                                        refresh=False)
                    lo = self.opts.log
                    if lo.every and self.step % lo.every == 0:
                        self._flush_scalars()
                    if lo.sample_every and self.step % lo.sample_every == 0:
                        self.write_samples()
                    if lo.checkpoint_every and self.step % lo.checkpoint_every == 0:
                        self.save()
                        last_saved = self.step
                    if self._done():
                        break
                else:
                    self.epoch += 1
                    self.step_in_epoch = 0
            if self._count:
                self._flush_scalars()
            if last_saved != self.step:
                self.save()
        finally:
            if bar is not None:
                bar.close()
            if self.log is not None:
                self.log.close()
        return self.run_dir / "checkpoints" / "latest"

    def _accumulate(self, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1

    def _flush_scalars(self) -> None:
        keys = sorted(self._sums)
        vec = torch.tensor([self._sums[k] for k in keys] + [float(self._count)], dtype=torch.float64)
        vec = distributed.all_reduce_sum(vec.to(self.device), self.info).cpu()
        count = vec[-1].item()
        values = {k: vec[i].item() / count for i, k in enumerate(keys)}
        values["lr_G"] = self.opt_g.param_groups[0]["lr"]
        values["lr_D"] = self.opt_d.param_groups[0]["lr"]
        self._sums, self._count = {}, 0
        if self.log is not None:
            elapsed = time.time() - self._t0
            self.log.scalars(self.step, values, epoch=self.epoch, seq_len=self.schedule.seq_length(self.epoch),
                             wall_s=round(elapsed, 2), cpu_s=round(time.process_time() - self._cpu0, 2))

    # -- samples -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, generator: torch.nn.Module, labels: torch.Tensor, reference: torch.Tensor | None,
                 edges: torch.Tensor | None = None, instances: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive generation of a clip (T x H x W labels, T x 1 x H x W boundary maps or None for
        the labels' own, T x H x W instance ids for a palette with objects) -> T x 3 x H x W in [-1, 1]."""
        to = (lambda x: None if x is None else x[None].to(self.device))  # one clip as a batch of one
        labels, edges, instances = to(labels), to(edges), to(instances)
        frames = [] if reference is None else [reference[None].to(self.device)]  # frame 0 is the reference
        outs = autoregress(generator, generator.cfg, labels, frames[0] if frames else None, len(frames),
                           labels.shape[1], edges, instances)
        return torch.cat([f.float() for f in frames + [out.image for out in outs]]).cpu()

    def write_samples(self) -> Path | None:
        """<run>/samples/step-NNNNNNN.mp4: labels | reference-conditioned | first-frame mode | real."""
        if not self.info.is_main:
            return None
        ds = self.sample_dataset()
        want = self.opts.log.sample_frames
        try:
            ds.set_sequence_length(want)
        except InputError:
            ds.set_sequence_length(max(2, min(self.schedule.seq_length(0), want)))
        item = ds[0]
        images, labels, edges, ids = item["images"], item["labels"], item.get("edges"), item.get("instances")
        gen = self.ema.model
        with self._autocast():
            with_ref = self.generate(gen, labels, images[0], edges, ids)
            first = self.generate(gen, labels, None, edges, ids)
        video = side_by_side(labels.numpy(), self.cfg.label_space, to_uint8(with_ref), to_uint8(first),
                             to_uint8(images))
        return write_video(self.run_dir / "samples" / f"step-{self.step:07d}.mp4", video)

    # -- checkpoints (train/state.py) ----------------------------------------------------------
    def state_info(self) -> dict[str, Any]:
        return training_counters(self)

    def save(self) -> Path:
        return save_training(self)

    def resume(self, path: str | Path) -> None:
        """Continue exactly where checkpoint `path` (a run folder or checkpoint folder) stopped."""
        resume_training(self, path)

    def write_options(self, extra: dict[str, Any] | None = None) -> None:
        if not self.info.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resolved = {"model": self.cfg.to_dict(), "world_size": self.info.world_size, "device": str(self.device),
                    "precision": self.opts.optim.precision if self.amp_dtype is not None else "fp32",
                    "lr_g": self.lr_g, "lr_d": self.lr_d, "dataset_clips": len(self.dataset),
                    "global_batch": self.opts.optim.batch_size * self.info.world_size,
                    "torch": str(torch.__version__), "threads": torch.get_num_threads(), "pid": os.getpid()}
        save_options(self.opts, self.run_dir / "options.yaml", {**resolved, **(extra or {})})
