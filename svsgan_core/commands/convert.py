"""Add generated camera topics to ROS 2 bags (.db3 or .mcap), offline; no ROS installation needed.

Every original topic and message is copied unchanged (the serialized bytes, bag times, type
definitions, QoS); each message of a mapped semantic topic gets one generated sensor_msgs/Image
(rgb8, the input's header) on the target topic, in order, with per-topic sequence state. The input
is never modified; the output is written under a temporary name beside it and renamed into place
when complete, so an interrupted run never leaves a half-written bag under the final name.

Examples:
  svsgan convert drive.mcap drive_svsgan --checkpoint ckpt \\
      --map /carla/ego_vehicle/semantic_segmentation_front/image:/svsgan/front
  svsgan convert a b c converted/ --checkpoint ckpt --map /seg:/gen --workers 2   # OUT is a folder

The ROS 2 entry point `ros2 run svs_gan_ros convert_bag ...` takes the same arguments.
"""
from __future__ import annotations

import argparse
import os
import queue
import sys
from pathlib import Path

from ..errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="input bag: a bag folder or a .db3/.mcap file")
    p.add_argument("output", metavar="OUT",
                   help="the output bag (a folder); with several inputs, a folder receiving one bag per input, "
                        "named like it")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (config.yaml + generator.safetensors)")
    p.add_argument("--map", dest="maps", action="append", required=True, metavar="SOURCE:TARGET",
                   help="semantic input topic and the topic for its generated frames (repeatable, one per camera)")
    p.add_argument("--label-encoding", default="auto", choices=("auto", "ids", "carla_palette", "carla_raw"),
                   help="how the semantic topic encodes classes; auto: class ids for mono8/mono16 images, "
                        "CARLA CityScapesPalette colours for colour images (default: auto)")
    p.add_argument("--label-space", default=None,
                   help="label space of class-id input (default: the model's); see docs/labels.md")
    p.add_argument("--carla-version", default="0.9.14", help="CARLA tag numbering for carla_raw (default: 0.9.14)")
    p.add_argument("--compressed", action="store_true",
                   help="also write TARGET/compressed, a JPEG sensor_msgs/CompressedImage")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of --compressed (default: 90)")
    p.add_argument("--reset-gap", type=float, default=1.0, metavar="SECONDS",
                   help="a header stamp later than the previous one by more than this starts a new sequence, "
                        "as does one that goes backwards (default: 1.0)")
    p.add_argument("--format", dest="storage", choices=("db3", "mcap"), default=None,
                   help="output storage (default: the input's)")
    p.add_argument("--typestore", default=None,
                   help="ROS 2 distribution whose message definitions read a bag that stores none (Humble .db3); "
                        "default: the bag's own ros_distro, else humble")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--workers", type=int, default=1,
                   help="with several inputs, convert this many in parallel processes (default: 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--max-megapixels", type=float, default=None, metavar="MP",
                   help="a png/jpeg input whose header declares more pixels than this is refused before "
                        "decoding, with an error (decompression bombs; default: 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def options_from_args(args: argparse.Namespace):
    from ..io.conversion import ConvertOptions, TopicMap

    options = ConvertOptions(
        maps=[TopicMap.parse(m) for m in args.maps], label_encoding=args.label_encoding,
        label_space=args.label_space, carla_version=args.carla_version, compressed=args.compressed,
        jpeg_quality=args.jpeg_quality, reset_gap_s=args.reset_gap, storage=args.storage,
        typestore=args.typestore,
        max_megapixels=ConvertOptions.max_megapixels if args.max_megapixels is None else args.max_megapixels)
    options.validate()
    return options


def plan_outputs(inputs: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one input -> OUT itself; several -> OUT/<input name>."""
    if len(inputs) == 1:
        return [(inputs[0], out)]
    names = [p.stem if p.is_file() else p.name for p in inputs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"several inputs are named {', '.join(duplicates)}: their outputs in {out} would collide; "
                         "convert them in separate calls")
    return [(src, out / name) for src, name in zip(inputs, names)]


def check_device(name: str) -> None:
    """Refuse a device torch does not know before any work starts."""
    import torch

    try:
        torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:1, ...): {exc}") from None


def run(args: argparse.Namespace) -> int:
    from ..io.bags import check_destination, locate_bag

    inputs, out = [Path(p).expanduser() for p in args.inputs], Path(args.output).expanduser()
    options = options_from_args(args)
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    check_device(args.device)
    for src in inputs:
        locate_bag(src)
    jobs = plan_outputs(inputs, out)
    for _, dest in jobs:
        check_destination(dest, args.overwrite, inputs)
    if len(jobs) > 1:
        out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    if args.workers > 1 and len(jobs) > 1:
        results = _run_parallel(jobs, args, options, progress)
    else:
        from ..io.conversion import convert_bag
        from ..runtime.synthesizer import VideoSynthesizer

        synth = VideoSynthesizer.from_checkpoint(args.checkpoint, args.device, args.precision)
        results = [convert_bag(src, dest, synth, options, overwrite=args.overwrite, progress=progress,
                               checkpoint_name=str(args.checkpoint)) for src, dest in jobs]
    for r in results:
        per_topic = ", ".join(f"{topic}: {n} frames in {r.sequences[topic]} sequence(s)" for topic, n in r.frames.items())
        print(f"{r.source} -> {r.output}: {r.total_frames} frames at {r.fps:.2f} frames/s ({per_topic})")
    return 0


# --------------------------------------------------------------------------------------------------
# Parallel workers: each process loads the model once and converts whole bags.

_worker: dict = {}


def _init_worker(checkpoint: str, device: str, precision: str, threads: int, progress_queue) -> None:
    import torch

    from ..runtime.synthesizer import VideoSynthesizer

    torch.set_num_threads(threads)
    _worker["synth"] = VideoSynthesizer.from_checkpoint(checkpoint, device, precision)
    _worker["queue"] = progress_queue


def _convert_in_worker(src: Path, dest: Path, options, overwrite: bool, checkpoint: str):
    from ..io.conversion import convert_bag

    q = _worker["queue"]
    return convert_bag(src, dest, _worker["synth"], options, overwrite=overwrite, progress=False,
                       on_frame=lambda _: q.put(1), checkpoint_name=checkpoint)


def _run_parallel(jobs, args, options, progress: bool):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from ..io.bags import BagReader

    total = 0
    for src, _ in jobs:
        with BagReader(src, options.typestore) as bag:
            total += sum(bag.count(m.source) for m in options.maps)
    workers = min(args.workers, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    progress_queue = ctx.Queue()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"{len(jobs)} bags, {workers} workers", unit="frame", dynamic_ncols=True)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(args.checkpoint), args.device, args.precision, threads,
                                       progress_queue)) as pool:
        futures = [pool.submit(_convert_in_worker, src, dest, options, args.overwrite, str(args.checkpoint))
                   for src, dest in jobs]
        try:
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, bar)
            _drain(progress_queue, bar)
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            if bar is not None:
                bar.close()


def _drain(progress_queue, bar) -> None:
    while True:
        try:
            n = progress_queue.get_nowait()
        except queue.Empty:
            return
        if bar is not None:
            bar.update(n)


def main(argv: list[str] | None = None) -> int:
    """Console entry point for `ros2 run svs_gan_ros convert_bag` (same arguments as `svsgan convert`)."""
    from ..cli import main as cli_main

    return cli_main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
