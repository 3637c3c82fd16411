"""The per-frame generator step as an ONNX graph, an onnxruntime synthesizer, and TensorRT engines.

Graph contract (opset >= 17; one graph serves both the first frame and the frames after it):

    inputs   prev_image   float32  Bx3xHxW  previous output frame in [-1, 1] (ignored on a first frame)
             prev_labels  int64    BxHxW    previous label map, class ids (ignored on a first frame)
             labels       int64    BxHxW    current label map, class ids
             first_frame  float32  B        1 = first frame of a sequence (first-frame mode), 0 = continue
    and, only for a model with an instance-edge channel (ModelConfig.instance_edges, issue 24):
             edges        float32  Bx1xHxW  the current frame's boundary map, 0/1 (data.instances.boundary_map
                                            of the labels and instance ids at this H x W)
             prev_edges   float32  Bx1xHxW  the previous frame's (ignored on a first frame)
    and, only for a model with a class palette (ModelConfig.class_palette):
             anchor_image  float32 Bx3xHxW  the sequence's first frame (the reference, or the first output)
             anchor_labels int64   BxHxW    its label map (both ignored on a first frame)
    and, only for a class palette with objects (ModelConfig.palette_instances):
             slots         int64   BxHxW    models.generator.palette_slots of this frame: 0 = class colour,
             anchor_slots  int64   BxHxW    k = the anchor frame's k-th object (its own mean colour)
    output   image        float32  Bx3xHxW  the new frame in [-1, 1]; feed it back as prev_image

The boundary maps are inputs, not computed in the graph, because they come from instance ids the graph
never sees; a model without the channel has exactly the four inputs above, as before (`graph_inputs`).
The anchor is an input for the same reason prev_image is: the stream, not the graph, holds state.

B (cameras) is dynamic; H and W are fixed at export time (`--resolution`), which lets TensorRT and
onnxruntime plan every convolution once.

Labels are integer ids, not one-hot: a frame crosses the host/device boundary as 8 bytes per pixel
instead of 4 x num_classes, and the graph builds the one-hot with one Equal against 0..N-1, which also
turns ids outside [0, N) (the ignore label) into all-zero pixels exactly as `models.one_hot` does.

First-frame mode is a flag input, not a second graph: the generator's first-frame mode (WI = 0,
OC = 1) is exactly the continuing step with the occlusion map forced to one, because every image skip
is then multiplied by 1 - OC = 0 and the decoder's occlusion channel is one. `max(OC, first_frame)`
does that inside the graph, so one file and one TensorRT engine serve whole sequences, and a batch may
mix cameras that start a sequence with cameras that continue one. The cost is one unused run of the
flow net and image encoder on a first frame, once per sequence.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.instances import boundary_map
from ..errors import CheckpointError, InputError
from ..io.bags import pid_alive
from ..models.config import ModelConfig
from ..models.generator import SVSGenerator, palette_slots
from .checkpoint import (CONFIG_NAME, GENERATOR_NAME, checkpoint_dir, load_generator, prepare_for_inference,
                         read_config)

INPUTS = ("prev_image", "prev_labels", "labels", "first_frame")
EDGE_INPUTS = ("edges", "prev_edges")  # instance_edges models only
ANCHOR_INPUTS = ("anchor_image", "anchor_labels")  # class_palette models only
SLOT_INPUTS = ("slots", "anchor_slots")  # palette_instances models only
LABEL_INPUTS = ("prev_labels", "labels", "anchor_labels") + SLOT_INPUTS  # int64 ids; every other input is float32
OUTPUTS = ("image",)
DEFAULT_OPSET = 17
META_KEY = "svsgan.config"


class GeneratorStep(nn.Module):
    """The module torch.onnx.export traces: its forward is SVSGenerator.step (see the module doc)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The inputs in `graph_inputs` order."""
        return self.generator.step(**dict(zip(graph_inputs(self.generator.cfg), inputs)))


def graph_inputs(cfg: ModelConfig) -> tuple[str, ...]:
    """The step graph's input names for a model: the four of the contract, + the boundary maps with
    an instance-edge channel, + the palette's anchor frame with a class palette, + the palette's object
    slots with palette_instances."""
    return (INPUTS + (EDGE_INPUTS if cfg.instance_edges else ()) + (ANCHOR_INPUTS if cfg.class_palette else ())
            + (SLOT_INPUTS if cfg.palette_instances else ()))


def input_dims(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Each graph input's shape without the batch dimension."""
    h, w = cfg.height, cfg.width
    dims = {"prev_image": (3, h, w), "prev_labels": (h, w), "labels": (h, w), "first_frame": (),
            "edges": (1, h, w), "prev_edges": (1, h, w), "anchor_image": (3, h, w), "anchor_labels": (h, w),
            "slots": (h, w), "anchor_slots": (h, w)}
    return {name: dims[name] for name in graph_inputs(cfg)}


def folded_copy(generator: nn.Module, cfg: ModelConfig | None = None) -> nn.Module:
    """A CPU fp32 inference copy of `generator` with spectral norm folded; the original is left as it was.

    Not copy.deepcopy: a deep-copied parametrized module shares its generated class with the original,
    and folding the copy would delete the original's `weight` property.
    """

    state = {k: v.detach().float().cpu() for k, v in generator.state_dict().items()}
    with torch.random.fork_rng(devices=[]):
        fresh = SVSGenerator(cfg or generator.cfg).eval()
    if not any(".parametrizations." in k for k in state):
        prepare_for_inference(fresh)
        fresh.load_state_dict(state)
        return fresh
    fresh.load_state_dict(state)
    return prepare_for_inference(fresh)


def resolution_config(cfg: ModelConfig, resolution: str | tuple[int, int] | None) -> ModelConfig:
    """`cfg` at another working size ("WIDTHxHEIGHT" or (height, width)); the weights do not depend on it."""
    if resolution is None:
        return cfg
    if isinstance(resolution, str):
        try:
            w, h = (int(v) for v in resolution.lower().split("x"))
        except ValueError:
            raise InputError(f"resolution must be WIDTHxHEIGHT (e.g. 1024x512), not {resolution!r}") from None
    else:
        h, w = resolution
    if (h, w) == (cfg.height, cfg.width):
        return cfg
    return dataclasses.replace(cfg, height=h, width=w)  # __post_init__ validates divisibility


def export_onnx(generator: nn.Module, path: str | os.PathLike, *, resolution: str | tuple[int, int] | None = None,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Write the step graph of `generator` (spectral norm folded, fp32) to `path`; returns the path.

    The model configuration (at the exported resolution) is stored in the file's metadata, so
    `OnnxSynthesizer` needs nothing else.
    """
    import onnx

    if opset < 17:
        raise InputError(f"opset {opset} is too old: InstanceNormalization/GridSample as used here need opset >= 17")
    cfg = resolution_config(generator.cfg, resolution)
    gen = folded_copy(generator, cfg)
    step = GeneratorStep(gen).eval()
    inputs = graph_inputs(cfg)
    args = tuple(torch.zeros(1, *dims, dtype=torch.int64 if name in LABEL_INPUTS else torch.float32)
                 for name, dims in input_dims(cfg).items())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch"} for name in inputs + OUTPUTS} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter is deprecated but needs no onnxscript; InstanceNorm's "train=True"
        # warning is harmless (instance norm always uses the input's statistics)
        warnings.simplefilter("ignore")
        torch.onnx.export(step, args, str(path), dynamo=False, opset_version=opset, input_names=list(inputs),
                          output_names=list(OUTPUTS), dynamic_axes=axes, do_constant_folding=True)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(cfg.to_dict())
    model.doc_string = "svsgan per-frame generator step: " + ", ".join(inputs) + " -> image (see svsgan_core/runtime/export.py)"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def read_onnx_config(path: str | os.PathLike) -> ModelConfig:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if META_KEY not in meta:
        raise InputError(f"{path} is not an svsgan step graph (no {META_KEY} metadata); export it with `svsgan export`")
    return ModelConfig.from_dict(json.loads(meta[META_KEY]))


def available_providers(preference: str | list[str] = "auto") -> list[str]:
    """onnxruntime execution providers: "auto" = TensorRT, then CUDA, then CPU, as installed."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    if preference == "auto":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    elif isinstance(preference, str):
        wanted = [p.strip() for p in preference.split(",")]
    else:
        wanted = list(preference)
    missing = [p for p in wanted if p not in have]
    if preference != "auto" and missing:
        raise InputError(f"onnxruntime here lacks {', '.join(missing)}; it has {', '.join(have)}")
    return [p for p in wanted if p in have] or ["CPUExecutionProvider"]


EXPORT_VERSION = 2  # 2: occlusion logits upsampled before the fp32 sigmoid. Bump when GeneratorStep's graph changes: cached exports then no longer match


def cache_dir() -> Path:
    """Where exported graphs are cached: $SVSGAN_CACHE_DIR, else $XDG_CACHE_HOME/svsgan, else ~/.cache/svsgan."""
    root = os.environ.get("SVSGAN_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "svsgan"
    return Path(root) / "onnx"


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest_path(out: Path) -> Path:
    return out.with_name(out.name + ".sha256")


def _regular(path: Path) -> bool:
    """A plain file itself, not a link to one nor a device or FIFO (a cache entry is never anything else)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _read_digest(record: Path) -> str | None:
    """The digest stored beside a graph: at most 256 bytes of a plain file, opened without following a
    link or blocking on a FIFO, so a record planted as a link to /dev/zero is never read whole."""
    try:
        fd = os.open(record, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 256).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def _entry_ok(out: Path) -> bool:
    """The cached file is the one we wrote: its SHA-256 matches the digest stored beside it."""
    if not _regular(out):
        return False
    digest = _read_digest(_digest_path(out))
    try:
        return digest is not None and digest == _file_sha256(out)
    except OSError:
        return False


def drop_cache_entry(out: Path, why: str) -> None:
    """Delete a cached graph (and its digest) that cannot be trusted, saying so; the next use rebuilds it."""
    print(f"svsgan: cached ONNX graph {out} {why}; deleting it and exporting again", file=sys.stderr, flush=True)
    for path in (out, _digest_path(out)):
        path.unlink(missing_ok=True)


def _remove_stale_temp_files(folder: Path) -> None:
    """Temp exports (`<key>.<pid>.tmp`) of processes that no longer exist (killed mid-export)."""
    for tmp in folder.glob("*.tmp"):
        pid = tmp.stem.rpartition(".")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def cached_onnx(checkpoint: str | os.PathLike, resolution: str | tuple[int, int] | None = None,
                opset: int = DEFAULT_OPSET) -> Path:
    """The step graph of a checkpoint, exported on first use and reused while its files are unchanged.

    Keyed by the SHA-256 of the weights and config, so a retrained checkpoint in the same folder gets
    a new graph. The exported file's own SHA-256 is stored beside it (`<key>.onnx.sha256`) and checked
    before every use: a planted or corrupt file is deleted and exported again, never used. Several
    processes starting together (convert workers, a node) export once: the first holds a lock file,
    the others wait and then read its result; the lock file is removed after the export.
    """
    import hashlib


    folder = checkpoint_dir(checkpoint)
    cfg, _ = read_config(folder)  # a bad or impossible config is refused before hashing or exporting anything
    # a model with the instance-edge channel or a class palette has a graph with more inputs: its own key
    # prefix (the keys of every other checkpoint, and so their cached graphs, stay what they were; a
    # palette graph cached before the anchor inputs existed is not reused)
    contract = (("-instance-edges" if cfg.instance_edges else "") + ("-palette-anchor" if cfg.class_palette else "")
                + ("-palette-objects" if cfg.palette_instances else ""))
    digest = hashlib.sha256(f"svsgan-step-v{EXPORT_VERSION}{contract}-opset{opset}-{resolution}".encode())
    for name in (CONFIG_NAME, GENERATOR_NAME):
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    out = cache_dir() / f"{digest.hexdigest()[:24]}.onnx"
    if _entry_ok(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.with_suffix(".lock")
    with _locked(lock):
        if _entry_ok(out):
            return out
        if out.exists():
            drop_cache_entry(out, "does not match its stored digest")
        _remove_stale_temp_files(out.parent)
        print(f"svsgan: exporting {folder} to ONNX for onnxruntime, once (cached as {out})",
              file=sys.stderr, flush=True)
        tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp")
        try:
            export_onnx(load_generator(folder), tmp, resolution=resolution, opset=opset)
            _digest_path(out).write_text(_file_sha256(tmp) + "\n")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)  # still held: a process waiting on it re-checks the entry
    return out


@contextlib.contextmanager
def _locked(path: Path):
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent first exports each write their own temp file
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def compare_with_pytorch(generator: nn.Module, path: str | os.PathLike, frames: int = 30, batch: int = 1,
                         seed: int = 0) -> list[float]:
    """Max |ONNX - PyTorch| of each frame of a stream where both get the same inputs every frame.

    PyTorch's own output is fed back as the next prev_image for both (teacher forcing): a free-running
    comparison would measure how an autoregressive model amplifies float rounding, not the export.
    Frame 0 runs PyTorch's first-frame mode against the graph's first_frame=1. A graph with boundary-map
    inputs gets those of the labels and of instance ids that split every class region into vertical
    bands (touching same-class objects), PyTorch the same maps; a graph with palette slots the slots of
    those ids against frame 0's.
    """
    import onnxruntime as ort

    cfg = read_onnx_config(path)
    gen = folded_copy(generator, cfg)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    base = torch.from_numpy(rng.integers(0, cfg.num_classes, (batch, cfg.height // 8, cfg.width // 8)))
    labels = base.repeat_interleave(8, 1).repeat_interleave(8, 2)
    bands = torch.arange(cfg.width).div(5, rounding_mode="floor").view(1, 1, -1)

    def edge_maps(lab: torch.Tensor) -> torch.Tensor | None:
        return boundary_map(lab, lab * 1000 + bands).unsqueeze(1).float() if cfg.instance_edges else None

    def slot_maps(lab: torch.Tensor) -> dict[str, torch.Tensor]:
        if not cfg.palette_instances:
            return {}
        anchor_slots, slots = palette_slots(anchor_labels, anchor_labels * 1000 + bands, lab, lab * 1000 + bands,
                                            cfg.palette_instances)
        return {"slots": slots, "anchor_slots": anchor_slots}

    prev_image, prev_labels, diffs = torch.zeros(batch, 3, cfg.height, cfg.width), labels, []
    anchor_image, anchor_labels = prev_image, labels  # a class palette's source: frame 0, once it exists
    edges = prev_edges = edge_maps(labels)
    with torch.inference_mode():
        for k in range(frames):
            first = k == 0
            slots = slot_maps(labels)
            ref = (gen(labels, edges=edges) if first else
                   gen(labels, prev_labels, prev_image, edges=edges, prev_edges=prev_edges,
                       anchor_image=anchor_image, anchor_labels=anchor_labels, slots=slots.get("slots"),
                       source_slots=slots.get("anchor_slots"))).image
            feeds = {"prev_image": prev_image.numpy(), "prev_labels": prev_labels.numpy(), "labels": labels.numpy(),
                     "first_frame": np.full(batch, float(first), np.float32)}
            if edges is not None:
                feeds.update(edges=edges.numpy(), prev_edges=prev_edges.numpy())
            if cfg.class_palette:
                feeds.update(anchor_image=anchor_image.numpy(), anchor_labels=anchor_labels.numpy())
            feeds.update({name: v.numpy() for name, v in slots.items()})
            got = sess.run(["image"], feeds)[0]
            diffs.append(float(np.abs(got - ref.numpy()).max()))
            prev_image, prev_labels, prev_edges = ref, labels, edges
            if first:
                anchor_image, anchor_labels = ref, labels
            labels = torch.roll(labels, shifts=(k % 3) - 1, dims=2)
            edges = edge_maps(labels)
    return diffs


# -- TensorRT -------------------------------------------------------------------------------------

def trtexec_command(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, cfg: ModelConfig,
                    max_batch: int = 4, fp16: bool = True) -> str:
    """The trtexec line that builds an engine from an exported step graph (TensorRT >= 10: int64 inputs)."""
    def shapes(b: int) -> str:
        return ",".join(f"{name}:" + "x".join(map(str, (b, *dims))) for name, dims in input_dims(cfg).items())

    parts = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", f"--minShapes={shapes(1)}",
             f"--optShapes={shapes(1)}", f"--maxShapes={shapes(max_batch)}"]
    if fp16:
        parts.append("--fp16")
    return " ".join(shlex.quote(p) for p in parts)


def build_tensorrt_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, *, max_batch: int = 4,
                          fp16: bool = True, workspace_gib: float = 4.0) -> Path:
    """Build and save a serialized TensorRT engine from the step graph (needs the `tensorrt` package and a GPU)."""
    cfg = read_onnx_config(onnx_path)
    try:
        import tensorrt as trt
    except ImportError:
        raise InputError("TensorRT is not installed here (pip install tensorrt on a CUDA machine), or build with:\n  "
                         + trtexec_command(onnx_path, engine_path, cfg, max_batch, fp16)) from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # required by TensorRT 8, implied by 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise InputError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, dims in input_dims(cfg).items():
        profile.set_shape(name, (1, *dims), (1, *dims), (max_batch, *dims))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise InputError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    out = Path(engine_path)
    out.write_bytes(bytes(engine))
    return out
