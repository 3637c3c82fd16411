"""VideoSynthesizer: the stateful, autoregressive streaming API (README, "The streaming API").

    synth = VideoSynthesizer.from_checkpoint(path, device="cpu")
    synth.reset(reference_image=None)   # new sequence
    rgb = synth.step(label_map)         # HxW ids in the model's label space -> HxWx3 uint8 RGB

A `Stream` holds one sequence's state (previous frame and previous label map, at model resolution);
several streams (cameras) share one model, and `step_batch` runs them in one forward pass.

A model with an instance-edge channel (`ModelConfig.instance_edges`) gets each frame's boundary map,
made here at the model's resolution: the label map and the instance ids (``step(..., instances=ids)``)
are resized nearest-neighbour first and the edges drawn on the result, never resized themselves (a
resized two-pixel line would thin, thicken or vanish with the scale). Without ids the map is the label
map's own edges. Models without the channel ignore the ids.

A class palette with objects (`ModelConfig.palette_instances`) keeps the stream's first frame's instance
ids beside its anchor: every later frame's objects that the first frame shows (the same id) start at
their own colour there (`models.generator.palette_slots`). Ids must be persistent over time, as CARLA's
are; frames without ids get the class colours.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.instances import boundary_map, compact_ids
from ..data.labels import get_label_space
from ..errors import InputError, SvsganError
from ..models.config import PRECISIONS, ModelConfig, preset
from ..models.generator import PaletteObjects, SVSGenerator
from .backend import Settings, apply, pick_backend, resolve, uses_cuda_graphs
from .checkpoint import load_generator, prepare_for_inference
from .export import LABEL_INPUTS, available_providers, cached_onnx, drop_cache_entry, graph_inputs, read_onnx_config


@dataclass
class Stream:
    """One camera's sequence state: the previous frame and label map, and the first ones (a class
    palette's anchor)."""

    prev_image: torch.Tensor | None = None  # 1x3xHxW in [-1, 1], model resolution
    prev_labels: torch.Tensor | None = None  # 1xHxW int64, model resolution
    prev_edges: torch.Tensor | None = None  # 1x1xHxW float32 boundary map (instance_edges models only)
    anchor_image: torch.Tensor | None = None  # frame 0 (the reference or the first output), like prev_image
    anchor_labels: torch.Tensor | None = None  # its label map
    anchor_objects: PaletteObjects | None = None  # its objects with a palette slot (palette_instances; None: no ids)
    pending_reference: np.ndarray | None = field(default=None, repr=False)
    frames: int = 0

    def clear(self) -> None:
        self.prev_image = self.prev_labels = self.prev_edges = self.pending_reference = None
        self.anchor_image = self.anchor_labels = self.anchor_objects = None
        self.frames = 0


FORWARD_NAMES = {"anchor_slots": "source_slots"}  # graph input names the generator's forward() calls otherwise


class VideoSynthesizer:
    """Streams of label maps in, frames out, over one generator (see the module doc).

    device / precision / channels_last / compile left as "auto" (or None) are chosen by
    `runtime.backend.resolve`: the fastest measured path with `optimize="auto"`, the plain fp32
    eager path with `optimize="none"`. Explicit values always win.
    """

    def __init__(self, generator: torch.nn.Module, device: str | torch.device | None = "cpu",
                 precision: str | None = "fp32", channels_last: bool | str | None = False,
                 compile: str | None = None, optimize: str = "none"):
        self.settings = resolve(device, precision, channels_last, compile, optimize)
        self.device = torch.device(self.settings.device)
        self.precision = self.settings.precision
        self.channels_last = self.settings.channels_last
        self.cfg: ModelConfig = generator.cfg
        self.label_space = get_label_space(self.cfg.label_space)
        self.generator = apply(prepare_for_inference(generator), self.settings)
        self._copy_outputs = uses_cuda_graphs(self.settings)
        self._default = Stream()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | None = "auto", precision: str | None = "auto",
                        channels_last: bool | str | None = "auto", compile: str | None = None,
                        optimize: str = "auto", backend: str = "auto") -> "VideoSynthesizer":
        """Load a checkpoint for streaming; by default on the fastest device and path this machine has.

        backend "auto" may return an `OnnxSynthesizer` (same contract; on the CPU the exported
        graph in onnxruntime is the fastest path, see `pick_backend`); its graph is exported once
        per checkpoint and cached (`export.cached_onnx`). "torch" or optimize="none" keep PyTorch.
        """

        settings = resolve(device, precision, channels_last, compile, optimize)
        if pick_backend(backend, settings, optimize) == "onnxruntime":

            try:
                return OnnxSynthesizer.from_checkpoint(path, device=settings.device)
            except (SvsganError, FileNotFoundError):
                raise
            except Exception as exc:  # an exporter or runtime problem: PyTorch still works
                if backend == "onnxruntime":
                    raise
                warnings.warn(f"onnxruntime path unavailable ({type(exc).__name__}: {exc}); using PyTorch")
        return cls(load_generator(path), settings.device, settings.precision, settings.channels_last,
                   settings.compile, "none")

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, **kw) -> "VideoSynthesizer":
        """Randomly initialised weights: for benchmarks and tests, not for pictures."""

        torch.manual_seed(seed)
        return cls(SVSGenerator(preset(name)), **kw)

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) the model works at."""
        return self.cfg.height, self.cfg.width

    def stream(self) -> Stream:
        """A new, independent sequence state sharing this model (one per camera)."""
        return Stream()

    # -- the streaming contract -------------------------------------------------------------------
    def reset(self, reference_image: np.ndarray | None = None, stream: Stream | None = None) -> None:
        """Start a new sequence. A reference image (HxWx3 uint8 RGB) becomes its first frame."""
        s = stream or self._default
        s.clear()
        if reference_image is not None:
            s.pending_reference = self._check_rgb(reference_image)

    def step(self, label_map: np.ndarray, stream: Stream | None = None,
             instances: np.ndarray | None = None) -> np.ndarray:
        return self.step_batch([label_map], [stream or self._default],
                               None if instances is None else [instances])[0]

    @torch.inference_mode()
    def step_batch(self, label_maps: list[np.ndarray], streams: list[Stream],
                   instances: list[np.ndarray | None] | None = None) -> list[np.ndarray]:
        """One frame for each (label map, stream) pair; streams in the same mode share a forward pass.

        ``instances``: per label map, HxW instance ids of the same size (``io.encoding.decode_instances``)
        or None (the label map's own edges). Accepted from every caller; a model without an instance-edge
        channel ignores them."""
        if len(label_maps) != len(streams):
            raise InputError("step_batch needs one stream per label map")
        if instances is not None and len(instances) != len(label_maps):
            raise InputError("step_batch needs one instance map (or None) per label map")
        if len({id(s) for s in streams}) != len(streams):
            raise InputError("step_batch got the same stream twice")
        labels = [self._labels_to_tensor(m) for m in label_maps]
        ids: list[torch.Tensor | None] = [None] * len(labels)
        if (self.cfg.instance_edges or self.cfg.palette_instances) and instances is not None:
            ids = [None if instances[i] is None else self._instance_ids(instances[i], label_maps[i])
                   for i in range(len(labels))]
        edges: list[torch.Tensor | None] = [None] * len(labels)
        if self.cfg.instance_edges:
            edges = [boundary_map(labels[i], ids[i]).unsqueeze(1).float() for i in range(len(labels))]
        out: list[np.ndarray | None] = [None] * len(streams)
        first, cont = [], []
        for i, s in enumerate(streams):
            if s.pending_reference is not None:
                ref = s.pending_reference
                s.pending_reference = None
                s.prev_image = s.anchor_image = self._rgb_to_tensor(ref)
                s.prev_labels, s.prev_edges = labels[i], edges[i]
                s.anchor_labels, s.anchor_objects = labels[i], self._objects(labels[i], ids[i])
                s.frames = 1
                out[i] = self._fit(ref, label_maps[i].shape[:2])
            elif s.prev_image is None:
                first.append(i)
            else:
                cont.append(i)
        for group, with_prev in ((first, False), (cont, True)):
            if not group:
                continue
            lab = torch.cat([labels[i] for i in group])
            prev_lab = torch.cat([streams[i].prev_labels for i in group]) if with_prev else None
            prev_img = torch.cat([streams[i].prev_image for i in group]) if with_prev else None
            extras = {}  # the model's inputs beyond the contract's, by their graph input names
            if self.cfg.instance_edges:
                extras["edges"] = torch.cat([edges[i] for i in group])
                if with_prev:
                    extras["prev_edges"] = torch.cat([streams[i].prev_edges for i in group])
            if with_prev and self.cfg.class_palette:
                extras["anchor_image"] = torch.cat([streams[i].anchor_image for i in group])
                extras["anchor_labels"] = torch.cat([streams[i].anchor_labels for i in group])
            if with_prev and self.cfg.palette_instances:
                extras["anchor_slots"], extras["slots"] = (
                    torch.cat(x) for x in zip(*(self._slots(streams[i], labels[i], ids[i]) for i in group)))
            images = self._generate(lab, prev_lab, prev_img, extras)
            rgb = self._to_uint8(images)
            for j, i in enumerate(group):
                s = streams[i]
                s.prev_image = images[j:j + 1]
                s.prev_labels, s.prev_edges = labels[i], edges[i]
                if not with_prev:
                    s.anchor_image, s.anchor_labels = s.prev_image, labels[i]
                    s.anchor_objects = self._objects(labels[i], ids[i])
                s.frames += 1
                out[i] = self._fit(rgb[j], label_maps[i].shape[:2])
        return out  # type: ignore[return-value]

    # -- internals --------------------------------------------------------------------------------
    def _objects(self, labels: torch.Tensor, ids: torch.Tensor | None) -> PaletteObjects | None:
        """A first frame's objects with a palette slot, kept by its stream (palette_instances models)."""
        if ids is None or not self.cfg.palette_instances:
            return None
        return PaletteObjects.of(labels, ids, self.cfg.palette_instances)

    def _slots(self, stream: Stream, labels: torch.Tensor,
               ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the anchor's palette slots, this frame's): zeros, the class colours, where either has no ids."""
        if ids is None or stream.anchor_objects is None:
            zeros = torch.zeros_like(labels)
            return zeros, zeros
        return stream.anchor_objects.source_slots, stream.anchor_objects.find(labels, ids)

    def _generate(self, labels, prev_labels, prev_image, extras: dict[str, torch.Tensor]) -> torch.Tensor:
        """One forward pass: labels, prev_labels, prev_image (None on first frames) and the model's other
        inputs in `extras`, named as the exported graph's (`export.graph_inputs`), left out on first frames
        except `edges`."""
        dtype = PRECISIONS[self.precision]
        if self.channels_last:
            if prev_image is not None:
                prev_image = prev_image.contiguous(memory_format=torch.channels_last)
            if "anchor_image" in extras:
                extras["anchor_image"] = extras["anchor_image"].contiguous(memory_format=torch.channels_last)
        if self._copy_outputs and hasattr(torch.compiler, "cudagraph_mark_step_begin"):  # torch >= 2.2
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            kwargs = {FORWARD_NAMES.get(name, name): value for name, value in extras.items()}
            image = self.generator(labels, prev_labels, prev_image, **kwargs).image
        # a CUDA-graph replay overwrites its output buffer: the stream keeps its own copy
        return image.clone() if self._copy_outputs and image.dtype == torch.float32 else image.float()

    def _labels_to_tensor(self, label_map: np.ndarray) -> torch.Tensor:
        arr = np.asarray(label_map)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.ndim != 2:
            raise InputError(f"a label map must be HxW class ids, got shape {arr.shape}")
        if arr.size == 0:
            raise InputError("empty label map")
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"label map must hold integer class ids, got dtype {arr.dtype}")
        n, ignore = self.cfg.num_classes, self.label_space.ignore_index
        bad = (arr < 0) | (arr >= n)
        if ignore is not None:
            bad &= arr != ignore
        if bad.any():
            vals = np.unique(arr[bad])[:5].tolist()
            raise InputError(f"label ids {vals} are outside the model's label space "
                             f"{self.label_space.name} (0..{n - 1}" + (f", ignore {ignore})" if ignore is not None else ")"))
        if arr.shape != self.resolution:
            arr = self._resize_ids(arr.astype(np.uint16 if arr.max() > 255 else np.uint8))
        return torch.from_numpy(arr.astype(np.int64)).unsqueeze(0).to(self.device)

    def _resize_ids(self, ids: np.ndarray) -> np.ndarray:
        """HxW ids at the model's resolution, nearest neighbour: the one resize of labels and instances
        alike, so both land on the same pixels."""
        h, w = self.resolution
        return ids if ids.shape == (h, w) else cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)

    def _instance_ids(self, instances: np.ndarray, label_map: np.ndarray) -> torch.Tensor:
        """1xHxW int64 instance ids at the model's resolution, resized as the label map is (same pixels),
        values unchanged (a palette slot follows an object by its id from frame to frame)."""
        arr = np.asarray(instances)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        shape = np.shape(label_map)[:2]
        if arr.ndim != 2 or arr.shape != shape:
            raise InputError(f"instance ids must be an HxW map of the label map's size {shape}, "
                             f"got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"instance ids must be integers, got dtype {arr.dtype}")
        if arr.shape != self.resolution:  # renumbered 0..n-1 for cv2's resize, then back to the ids
            compact, values = compact_ids(arr, return_values=True)
            arr = values[self._resize_ids(compact)]
        return torch.from_numpy(arr.astype(np.int64)).unsqueeze(0).to(self.device)

    def _check_rgb(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or img.size == 0:
            raise InputError(f"reference image must be HxWx3 uint8 RGB, got shape {img.shape} dtype {img.dtype}")
        return img

    def _rgb_to_tensor(self, image: np.ndarray) -> torch.Tensor:
        h, w = self.resolution
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        t = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1).unsqueeze(0)
        return t.float() / 127.5 - 1.0

    @staticmethod
    def _to_uint8(images: torch.Tensor) -> np.ndarray:
        return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    @staticmethod
    def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if image.shape[:2] == tuple(size):
            return np.ascontiguousarray(image)
        return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


class OnnxSynthesizer(VideoSynthesizer):
    """The streaming contract (reset / step / step_batch / stream) over an exported step in onnxruntime.

    A drop-in for VideoSynthesizer where the node or `svsgan convert` should run without PyTorch
    kernels (or on TensorRT through onnxruntime's provider): input checks, resizing, reference images
    and per-camera streams are VideoSynthesizer's; only the forward pass differs.
    """

    def __init__(self, path: str | os.PathLike, providers: str | list[str] = "auto", threads: int | None = None,
                 spin: bool = False):
        """`spin=False`: idle onnxruntime threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE's
        reason: on a shared 2-core CPU spinning threads starve everything else, this process included)."""
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"no ONNX file at {self.path}")
        self.cfg = read_onnx_config(self.path)
        self.label_space = get_label_space(self.cfg.label_space)
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.channels_last = False
        self.generator = None
        self._default = Stream()
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.providers = available_providers(providers)
        self.session = ort.InferenceSession(str(self.path), opts, providers=self.providers)
        names, want = [i.name for i in self.session.get_inputs()], list(graph_inputs(self.cfg))
        if names != want:  # a graph written by another svsgan version for this model
            raise InputError(f"{self.path} takes inputs {', '.join(names)}, but this svsgan feeds a graph of its "
                             f"model {', '.join(want)}: export it again (svsgan export)")
        self.settings = Settings("onnxruntime:" + ",".join(self.providers), "fp32", False, None)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | None = "cpu", threads: int | None = None,
                        resolution: str | tuple[int, int] | None = None, **_ignored) -> "OnnxSynthesizer":
        """A checkpoint's cached step graph (`cached_onnx`); CUDA/TensorRT providers when device is not the CPU."""
        providers = ["CPUExecutionProvider"] if str(device or "cpu") == "cpu" else "auto"
        out = cached_onnx(path, resolution)
        try:
            return cls(out, providers=providers, threads=threads)
        except ImportError:  # onnx/onnxruntime, not the file: also what Ctrl-C in their initialisation gives
            raise
        except Exception as exc:  # a cached file that cannot be loaded: rebuild it once
            drop_cache_entry(out, f"could not be loaded ({type(exc).__name__}: {str(exc)[:200]})")
            return cls(cached_onnx(path, resolution), providers=providers, threads=threads)

    def _generate(self, labels, prev_labels, prev_image, extras: dict[str, torch.Tensor]) -> torch.Tensor:
        b, (h, w) = labels.shape[0], self.resolution
        first = np.full(b, 1.0 if prev_image is None else 0.0, np.float32)
        if prev_image is None:  # the graph still takes every input: stand-ins it ignores on a first frame
            prev_image, prev_labels = torch.zeros(b, 3, h, w), labels
            stand_ins = {"prev_edges": extras.get("edges"), "anchor_image": prev_image, "anchor_labels": labels,
                         "slots": torch.zeros_like(labels), "anchor_slots": torch.zeros_like(labels)}
            extras = {**stand_ins, **extras}
        given = {"prev_image": prev_image, "prev_labels": prev_labels, "labels": labels, **extras}
        feeds = {name: (given[name] if name in LABEL_INPUTS else given[name].float()).contiguous().numpy()
                 for name in graph_inputs(self.cfg) if name != "first_frame"}
        feeds["first_frame"] = first
        return torch.from_numpy(self.session.run(["image"], feeds)[0])
