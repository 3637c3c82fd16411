"""Label every frame of an image tree with a semantic-segmentation network, as the datasets read them.

The paper trains on Cityscapes sequences, where only one frame in 30 is annotated, with every frame
labelled by OneFormer; KITTI-360 and RGB-only drives need the same. The segmenter is a local file
(nothing is downloaded): a Hugging Face transformers folder written by save_pretrained (SegFormer,
Mask2Former, OneFormer, UperNet; classes matched by name from its id2label), or the TorchScript /
ONNX networks `svsgan eval` uses for mIoU (with a --segmenter-labels JSON). Same loader, same labels.

Layouts (docs/datasets.md):
  cityscapes  IMAGES = the Cityscapes root (or its leftImg8bit_sequence folder);
              writes OUT/<split>/<city>/<city>_<seq>_<frame>_labelTrainIds.png
              (pass OUT = ROOT/pseudo_labels_sequence, the dataset's default --label-root)
  kitti360    IMAGES = the KITTI-360 root (data_2d_raw/<drive>/image_00/data_rect/*.png);
              writes OUT/<drive>/image_00/semantic/<frame>.png in KITTI-360 ids
              (pass OUT = ROOT/data_2d_semantics/train, where the dataset reads labels; ground-truth
              files already there are kept unless --overwrite)
  folder      IMAGES = a sequence-folder dataset (<seq>/images/*.png, e.g. from `svsgan extract`
              without --labels), a folder of sequence folders of frames, or one folder of frames;
              writes OUT/<seq>/labels/<stem>.png and OUT/dataset.yaml (images are hard-linked or
              copied into OUT/<seq>/images unless OUT is IMAGES)

With a panoptic segmenter (a Mask2Former, OneFormer or MaskFormer folder) instance maps are written
beside the labels too, as the paper's OneFormer gave "segmentation and instance maps" (--instances auto,
the default; on: required; off: labels only), in Cityscapes' instanceIds convention (label * 1000 + k on
the k-th object, the label on stuff): cityscapes OUT/.../<stem>_instanceIds.png, kitti360
OUT/<drive>/image_00/instance/<frame>.png, folder OUT/<seq>/instances/<stem>.png.

Existing label files are kept unless --overwrite, so an interrupted run continues where it stopped;
each file is written to a temporary name and renamed. Images that cannot be read are reported,
skipped and counted.

Examples:
  svsgan pseudo-label /data/cityscapes /data/cityscapes/pseudo_labels_sequence --layout cityscapes \\
      --segmenter weights/segformer-b5-cityscapes --batch 8
  svsgan pseudo-label /data/KITTI-360 /data/KITTI-360/data_2d_semantics/train --layout kitti360 \\
      --segmenter weights/segformer-b5-cityscapes
  svsgan pseudo-label data/my_drive data/my_drive --segmenter weights/segformer-b5-cityscapes
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..data.labels import get_label_space
from ..data.instances import thing_instance_ids
from ..data.layouts import (
    DATASET_FILE,
    IMAGE_EXTENSIONS,
    cityscapes_instance_suffix,
    read_image,
    read_label,
    write_dataset_info,
    write_instances,
    write_label,
)
from ..errors import InputError

LAYOUT_CHOICES = ("auto", "folder", "cityscapes", "kitti360")
#: the label space each layout's dataset reads by default
DEFAULT_SPACE = {"cityscapes": "cityscapes", "kitti360": "kitti360", "folder": "cityscapes"}
CITYSCAPES_SUFFIX = {"cityscapes": "labelTrainIds", "cityscapes_ids": "labelIds"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", type=Path, help="image tree (see the layouts above)")
    p.add_argument("out", type=Path, help="label tree to write (may be IMAGES for the folder layout)")
    p.add_argument("--segmenter", required=True, metavar="PATH",
                   help="transformers save_pretrained folder, TorchScript .pt or ONNX .onnx")
    p.add_argument("--segmenter-labels", metavar="JSON",
                   help="label_map / class_names / class_map / mean / std / input_size (see docs/metrics.md); "
                        "needed for .pt/.onnx networks whose outputs are not the label space's ids")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto",
                   help="image tree layout (default: cityscapes if leftImg8bit_sequence/ is in IMAGES, "
                        "kitti360 if data_2d_raw/ is, else folder)")
    p.add_argument("--label-space", help="space the labels are written in (default: cityscapes trainIds; "
                                         "kitti360 for the kitti360 layout, which reads only that)")
    p.add_argument("--split", help="cityscapes: label only this split (default: every split found)")
    p.add_argument("--label-suffix", help="cityscapes: file suffix (default labelTrainIds, labelIds for cityscapes_ids)")
    p.add_argument("--camera", default="image_00", help="kitti360: camera folder (default image_00)")
    p.add_argument("--instances", choices=("auto", "on", "off"), default="auto",
                   help="also write instance maps beside the labels: auto (default) when the segmenter is panoptic "
                        "(transformers Mask2Former / OneFormer / MaskFormer), on: required, off: labels only")
    p.add_argument("--batch", type=int, default=4, help="images per forward pass (default 4)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--overwrite", action="store_true", help="relabel images whose label file exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class Job:
    image: Path
    label: Path
    copy_to: Path | None = None  # folder layout: where the image goes in OUT (None: already there)
    instance: Path | None = None  # where its instance map goes (None: labels only)


@dataclass
class Result:
    written: int = 0
    skipped: int = 0
    instances: int = 0  # instance maps written
    corrupt: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- what to label -------------------------------------------------------------------------------------


def detect(images: Path) -> str:
    if (images / "leftImg8bit_sequence").is_dir() or images.name == "leftImg8bit_sequence":
        return "cityscapes"
    if (images / "data_2d_raw").is_dir():
        return "kitti360"
    return "folder"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def cityscapes_jobs(images: Path, out: Path, split: str | None, suffix: str, instances: bool = False) -> list[Job]:
    base = images / "leftImg8bit_sequence" if (images / "leftImg8bit_sequence").is_dir() else images
    splits = [split] if split else sorted(p.name for p in base.iterdir() if p.is_dir())
    jobs = []
    for name in splits:
        if not (base / name).is_dir():
            raise InputError(f"Cityscapes split {name!r}: {base / name} does not exist")
        for image in sorted((base / name).glob("*/*_leftImg8bit.*")):
            if image.suffix.lower() in IMAGE_EXTENSIONS:
                stem = image.stem[: -len("_leftImg8bit")]
                folder = out / name / image.parent.name
                jobs.append(Job(image, folder / f"{stem}_{suffix}.png", None,
                                folder / f"{stem}_{cityscapes_instance_suffix(suffix)}.png" if instances else None))
    if not jobs:
        raise InputError(f"no <split>/<city>/*_leftImg8bit.png images under {base}")
    return jobs


def kitti360_jobs(images: Path, out: Path, camera: str, instances: bool = False) -> list[Job]:
    raw = images / "data_2d_raw"
    if not raw.is_dir():
        raise InputError(f"{raw} does not exist: IMAGES must be the KITTI-360 root")
    jobs = []
    for drive in sorted(p for p in raw.iterdir() if (p / camera / "data_rect").is_dir()):
        for image in _images_in(drive / camera / "data_rect"):
            jobs.append(Job(image, out / drive.name / camera / "semantic" / f"{image.stem}.png", None,
                            out / drive.name / camera / "instance" / f"{image.stem}.png" if instances else None))
    if not jobs:
        raise InputError(f"no images in {raw}/<drive>/{camera}/data_rect")
    return jobs


def folder_jobs(images: Path, out: Path, instances: bool = False) -> list[Job]:
    """Sequence folders (<seq>/images/ or <seq>/ of frames) or one folder of frames -> OUT/<seq>/."""
    same = out.resolve() == images.resolve()
    if _images_in(images):
        sequences = [(images.name or "sequence", images)]
    else:
        sequences = [(d.name, d / "images" if (d / "images").is_dir() else d)
                     for d in sorted(images.iterdir()) if d.is_dir()]
    jobs = []
    for name, folder in sequences:
        in_place = same and folder.name == "images"
        for image in _images_in(folder):
            jobs.append(Job(image, out / name / "labels" / f"{image.stem}.png",
                            None if in_place else out / name / "images" / image.name,
                            out / name / "instances" / f"{image.stem}.png" if instances else None))
    if not jobs:
        raise InputError(f"no images found in {images}: expected <seq>/images/*.png, <seq>/*.png or *.png")
    return jobs


# -- labelling -----------------------------------------------------------------------------------------


def _place_image(source: Path, target: Path) -> None:
    """Hard link (no copy) where the file system allows, else a copy renamed into place."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _read(job: Job):
    try:
        return job, read_image(job.image), None
    except InputError as exc:
        return job, None, str(exc)


def to_space(labels: np.ndarray, space, ignore: int) -> np.ndarray:
    """Segmenter output (IGNORE_LABEL where a class is not in the space) -> uint8 ids of `space`."""
    unmapped = labels == ignore
    if unmapped.any():
        if space.ignore_index is None:
            raise InputError(f"the segmenter sends some classes to ignore, but label space {space.name!r} has "
                             f"no ignore id; map every class to a {space.name} class in --segmenter-labels")
        labels = np.where(unmapped, space.ignore_index, labels)
    bad = (labels < 0) | (labels >= space.num_classes)
    if space.ignore_index is not None:
        bad &= labels != space.ignore_index
    if bad.any():
        raise InputError(f"the segmenter's label_map gives ids outside label space {space.name!r}: "
                         f"{sorted(int(v) for v in np.unique(labels[bad]))[:10]}")
    return labels.astype(np.uint8)


def _done(job: Job) -> bool:
    return job.label.is_file() and (job.instance is None or job.instance.is_file())


def pseudo_label(jobs: list[Job], segmenter, label_space, batch: int = 4, overwrite: bool = False,
                 progress: bool = True, log=print) -> Result:
    """Run `segmenter` (metrics.miou.Segmenter) over `jobs`, writing each label file (and, for jobs that
    name one, its instance map from `segmenter.predict_segments`) atomically. A kept label file (no
    --overwrite) whose instance map is missing gets the instance map only, built on the kept labels."""
    from ..metrics.miou import IGNORE_LABEL

    if batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    space = get_label_space(label_space)
    result = Result()
    todo = []
    for job in jobs:
        if _done(job) and not overwrite:
            result.skipped += 1
            if job.copy_to is not None:
                _place_image(job.image, job.copy_to)
        else:
            todo.append(job)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="image", desc="pseudo-label", dynamic_ncols=True)
    say = bar.write if bar is not None else log
    start = time.perf_counter()
    chunks = [todo[i:i + batch] for i in range(0, len(todo), batch)]
    # decode the next batch while the network runs on this one
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(lambda c: [_read(j) for j in c], chunks[0]) if chunks else None
        for k in range(len(chunks)):
            loaded = pending.result()
            pending = pool.submit(lambda c: [_read(j) for j in c], chunks[k + 1]) if k + 1 < len(chunks) else None
            good = []
            for job, image, error in loaded:
                if error is None:
                    good.append((job, image))
                else:
                    result.corrupt.append(str(job.image))
                    say(f"skipping {error}")
            by_size: dict[tuple, list] = {}
            for job, image in good:
                by_size.setdefault(image.shape, []).append((job, image))
            for group in by_size.values():
                batch_images = np.stack([image for _, image in group])
                labels = segmenter.predict(batch_images)
                segments = segmenter.predict_segments(batch_images) if any(j.instance for j, _ in group) else None
                for k, ((job, _), label) in enumerate(zip(group, labels)):
                    if job.label.is_file() and not overwrite:  # kept: only its instance map was missing
                        label = read_label(job.label)
                    else:
                        label = to_space(label, space, IGNORE_LABEL)
                        write_label(job.label, label)
                        result.written += 1
                    if job.instance is not None:
                        write_instances(job.instance, thing_instance_ids(label, segments[k]))
                        result.instances += 1
                    if job.copy_to is not None:
                        _place_image(job.image, job.copy_to)
            if bar is not None:
                bar.update(len(loaded))
    if bar is not None:
        bar.close()
    result.seconds = time.perf_counter() - start
    return result


def _write_folder_info(images: Path, out: Path, space: str, segmenter: str, instances: bool = False) -> None:
    """OUT/dataset.yaml naming the label space; fields of IMAGES/dataset.yaml (source, topics) are kept."""
    info = {}
    source = images / DATASET_FILE
    if source.is_file():
        try:
            info = yaml.safe_load(source.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{source} is not valid YAML: {exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"{source} is not a text (UTF-8 YAML) file") from None
    # kept: where the images came from; replaced: what `svsgan extract` said of the labels ("none yet")
    info = {k: v for k, v in info.items() if k not in ("format", "version", "label_space", "labels")}
    info["pseudo_labels"] = {"segmenter": str(segmenter), **({"instances": True} if instances else {})}
    write_dataset_info(out, space, **info)


def run(args: argparse.Namespace) -> int:
    from ..metrics.miou import Segmenter
    from ..runtime.backend import resolve_device

    images, out = args.images, args.out
    if not images.is_dir():
        raise InputError(f"image folder {images} does not exist" if not images.exists() else f"{images} is not a folder")
    layout = detect(images) if args.layout == "auto" else args.layout
    space = get_label_space(args.label_space or DEFAULT_SPACE[layout], "--label-space").name
    if layout == "kitti360" and space != "kitti360":
        raise InputError("the KITTI-360 dataset reads labels in the kitti360 space only; drop --label-space")
    if layout == "cityscapes" and space not in CITYSCAPES_SUFFIX:
        raise InputError(f"the Cityscapes layout stores cityscapes or cityscapes_ids labels, not {space!r}")
    if args.split and layout != "cityscapes":
        raise InputError(f"--split does not apply to the {layout} layout")
    device = str(resolve_device(args.device))
    segmenter = Segmenter.from_files(args.segmenter, args.segmenter_labels, device=device, label_space=space)
    if args.instances == "on" and not segmenter.panoptic:
        raise InputError(f"--instances on needs a panoptic segmenter (a transformers Mask2Former, OneFormer or "
                         f"MaskFormer folder); {args.segmenter} predicts classes per pixel only")
    instances = args.instances != "off" and segmenter.panoptic
    if layout == "cityscapes":
        jobs = cityscapes_jobs(images, out, args.split, args.label_suffix or CITYSCAPES_SUFFIX[space], instances)
    elif layout == "kitti360":
        jobs = kitti360_jobs(images, out, args.camera, instances)
    else:
        jobs = folder_jobs(images, out, instances)
    print(f"{layout} tree {images}: {len(jobs)} images -> {out} as {space} labels"
          + (" and instance maps" if instances else "") + f", segmenter {args.segmenter} on {device}, batch {args.batch}")
    result = pseudo_label(jobs, segmenter, space, batch=args.batch, overwrite=args.overwrite,
                          progress=not args.no_progress)
    if layout == "folder" and result.written + result.skipped:
        _write_folder_info(images, out, space, args.segmenter, instances)
    rate = f" ({result.written / result.seconds:.2f} images/s)" if result.written and result.seconds > 0 else ""
    print(f"wrote {result.written} label maps" + (f" and {result.instances} instance maps" if instances else "")
          + f" in {result.seconds:.1f} s{rate}, kept {result.skipped} existing, "
          f"skipped {len(result.corrupt)} unreadable images")
    if result.corrupt:
        shown = ", ".join(result.corrupt[:5]) + (", ..." if len(result.corrupt) > 5 else "")
        print(f"unreadable (no label written; remove or replace them before training): {shown}")
    return 1 if result.corrupt and not (result.written or result.skipped) else 0
