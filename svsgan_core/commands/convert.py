"""Add generated camera topics to ROS 2 bags (.db3 or .mcap), offline; no ROS installation needed.

Every original topic and message is copied unchanged (the serialized bytes, bag times, type
definitions, QoS); each message of a mapped semantic topic gets one generated sensor_msgs/Image
(rgb8, the input's header) on the target topic, in order, with per-topic sequence state. A map
that names a third topic, an RGB camera recorded beside the semantic one, starts each sequence from
the camera frame with the same header stamp (the reference); a sequence without one starts in
first-frame mode, and the count of each is reported. --instances SOURCE=TOPIC pairs a mapped
topic with its instance camera by exact header stamp and hands the ids to the generator (a frame
without one is generated from its labels alone and counted). The input is never modified; the output is written under a temporary name beside it and renamed into place
when complete, so an interrupted run never leaves a half-written bag under the final name.

Examples:
  svsgan convert drive.mcap drive_svsgan --checkpoint ckpt \\
      --map /carla/ego_vehicle/semantic_segmentation_front/image:/svsgan/front
  svsgan convert a b c converted/ --checkpoint ckpt --map /seg:/gen --workers 2   # OUT is a folder
  svsgan convert drive.mcap drive_svsgan --checkpoint ckpt \\
      --map /carla/ego_vehicle/semantic_segmentation_front/image:/svsgan/front:/carla/ego_vehicle/rgb_front/image
  svsgan convert drive.mcap drive_svsgan --checkpoint ckpt --map /carla/hero/semantic_segmentation/image:/svsgan/front \
      --instances /carla/hero/semantic_segmentation/image=/carla/hero/instance_segmentation/image

The ROS 2 entry point `ros2 run svs_gan_ros convert_bag ...` takes the same arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
from pathlib import Path

from ..errors import InputError
from . import add_threads_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN", help="input bag: a bag folder or a .db3/.mcap file")
    p.add_argument("output", metavar="OUT",
                   help="the output bag (a folder); with several inputs, a folder receiving one bag per input, "
                        "named like it")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (config.yaml + generator.safetensors)")
    p.add_argument("--map", dest="maps", action="append", required=True, metavar="SOURCE:TARGET[:REFERENCE]",
                   help="semantic input topic and the topic for its generated frames (repeatable, one per camera); "
                        "REFERENCE: an RGB camera topic (Image rgb8/bgr8/rgba8/bgra8 or CompressedImage) recorded "
                        "beside it, whose frame with the same header stamp starts each sequence")
    p.add_argument("--instances", action="append", default=[], metavar="SOURCE=INSTANCE_TOPIC",
                   help="the instance-segmentation topic recorded beside a --map SOURCE (CARLA's bgra8 instance "
                        "camera, or mono8/mono16/32SC1 ids; repeatable, one per camera): paired by exact header "
                        "stamp and given to the generator with the labels; frames without one are generated from "
                        "the labels alone and counted")
    p.add_argument("--reference-max-dt", type=float, default=None, metavar="SECONDS",
                   help="a reference frame's header stamp may differ from the semantic frame's by this much "
                        "(default: 0.001; CARLA stamps the cameras of one tick identically)")
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
    add_threads_argument(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--max-megapixels", type=float, default=None, metavar="MP",
                   help="a png/jpeg input whose header declares more pixels than this is refused before "
                        "decoding, with an error (decompression bombs; default: 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: --workers processes on this machine (default); ray: --workers Ray actors, on the "
                        "cluster at RAY_ADDRESS or a local Ray instance (the `ray` extra); see docs/bags.md")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip inputs whose complete output already exists (a rerun after a crash finishes the job)")


def parse_instances(texts: list[str]) -> dict[str, str]:
    """`SOURCE=INSTANCE_TOPIC` pairs -> {source: instance topic}."""
    pairs: dict[str, str] = {}
    for text in texts:
        source, sep, topic = str(text).partition("=")
        if not sep or not source.strip() or not topic.strip():
            raise InputError(f"--instances expects SOURCE=INSTANCE_TOPIC, e.g. /carla/hero/semantic_segmentation/image"
                             f"=/carla/hero/instance_segmentation/image; got {text!r}")
        if source.strip() in pairs:
            raise InputError(f"--instances names {source.strip()} twice")
        pairs[source.strip()] = topic.strip()
    return pairs


def options_from_args(args: argparse.Namespace):
    from ..io.conversion import ConvertOptions, TopicMap

    options = ConvertOptions(
        maps=[TopicMap.parse(m) for m in args.maps], label_encoding=args.label_encoding,
        label_space=args.label_space, carla_version=args.carla_version, compressed=args.compressed,
        jpeg_quality=args.jpeg_quality, reset_gap_s=args.reset_gap, storage=args.storage,
        typestore=args.typestore,
        max_megapixels=ConvertOptions.max_megapixels if args.max_megapixels is None else args.max_megapixels,
        reference_max_dt_s=(ConvertOptions.reference_max_dt_s if args.reference_max_dt is None
                            else args.reference_max_dt),
        instances=parse_instances(getattr(args, "instances", []) or []))
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


def run(args: argparse.Namespace) -> int:
    from ..io.bags import check_destination, locate_bag
    from ..runtime.backend import resolve_device

    inputs, out = [Path(p).expanduser() for p in args.inputs], Path(args.output).expanduser()
    options = options_from_args(args)
    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    if args.threads < 0:
        raise InputError(f"--threads must be 0 (one per core) or more, got {args.threads}")
    resolve_device(args.device, "--device")  # one this torch can use, before any work
    for src in inputs:
        locate_bag(src)
    jobs = plan_outputs(inputs, out)
    outcomes: dict[int, dict] = {}
    todo = []
    for i, (src, dest) in enumerate(jobs):
        if args.skip_existing and output_complete(dest):
            outcomes[i] = _outcome(src, dest, "skipped", error="complete output exists")
            continue
        check_destination(dest, args.overwrite, inputs)
        todo.append(i)
    if len(jobs) > 1:
        out.mkdir(parents=True, exist_ok=True)
    report = _Report(jobs, options, todo, outcomes, progress=not args.no_progress)
    try:
        if args.executor == "ray":
            _run_ray(report, args, options)
        elif args.workers > 1 and len(report.todo) > 1:
            _run_parallel(report, args, options)
        elif report.todo:
            from ..runtime.backend import set_threads
            from ..runtime.synthesizer import VideoSynthesizer

            set_threads(args.threads)
            synth = VideoSynthesizer.from_checkpoint(args.checkpoint, args.device, args.precision)
            for i in report.todo:
                src, dest = jobs[i]
                report.finish(i, convert_one(src, dest, synth, options, args.overwrite, str(args.checkpoint),
                                             report.frame))
    finally:
        report.close()
    ordered = [outcomes[i] for i in range(len(jobs))]
    counts = status_counts(ordered)
    if len(jobs) > 1:
        write_summary(out / "summary.json", ordered, counts)
    print(f"{counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped"
          + (f" (summary: {out / 'summary.json'})" if len(jobs) > 1 else ""))
    if len(jobs) == 1 and counts["failed"]:
        raise InputError(ordered[0]["error"])  # one input: its error, as before
    return 1 if counts["failed"] else 0


# --------------------------------------------------------------------------------------------------
# Per-bag outcomes: every input ends done, failed (with its error) or skipped.


def output_complete(dest: Path) -> bool:
    """Only a committed output counts: convert_bag writes under a hidden temporary name and renames the
    finished bag (with its metadata.yaml) into place, so a partial never sits at `dest`."""
    return (Path(dest) / "metadata.yaml").is_file()


def _outcome(src, dest, status: str, *, error: str | None = None, result=None) -> dict:
    entry = {"input": str(src), "output": str(dest), "status": status, "error": error}
    if result is not None:
        import torch

        entry.update(frames=result.total_frames, fps=round(result.fps, 3), threads=torch.get_num_threads(),
                     topics={t: {"frames": n, "sequences": result.sequences[t],
                                 **({"reference": result.references[t]} if t in result.references else {}),
                                 **({"instances": result.instances[t]} if t in result.instances else {})}
                             for t, n in result.frames.items()})
    return entry


def convert_one(src, dest, synth, options, overwrite: bool, checkpoint: str, on_frame=None) -> dict:
    """convert_bag on one input, its failure caught and returned, so one bad bag never stops the others."""
    from ..io.conversion import convert_bag

    try:
        result = convert_bag(src, dest, synth, options, overwrite=overwrite, progress=False,
                             on_frame=on_frame, checkpoint_name=checkpoint)
    except Exception as exc:  # noqa: BLE001 - any error of this bag is this bag's outcome
        return _outcome(src, dest, "failed", error=f"{type(exc).__name__}: {exc}" if not isinstance(exc, InputError)
                        else str(exc))
    return _outcome(src, dest, "done", result=result)


def status_counts(outcomes: list[dict]) -> dict[str, int]:
    return {s: sum(o["status"] == s for o in outcomes) for s in ("done", "failed", "skipped")}


def write_summary(path: Path, outcomes: list[dict], counts: dict[str, int]) -> None:
    """summary.json, written under a temporary name and renamed: a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"inputs": outcomes, **counts}, indent=2) + "\n")
    os.replace(tmp, path)


class _Report:
    """One progress bar over all frames of all bags to convert, and a line per bag as it ends."""

    def __init__(self, jobs, options, todo: list[int], outcomes: dict, progress: bool):
        from ..io.bags import BagReader

        self.jobs, self.outcomes, self.todo, self.frames = jobs, outcomes, [], {}
        for i in todo:
            src, dest = jobs[i]
            try:
                with BagReader(src, options.typestore) as bag:
                    self.frames[i] = sum(bag.count(m.source) for m in options.maps)
            except Exception as exc:  # noqa: BLE001 - an unreadable bag fails alone
                self.outcomes[i] = _outcome(src, dest, "failed", error=str(exc))
                continue
            self.todo.append(i)
        self.bar = None
        if progress and self.todo:
            from tqdm import tqdm

            self.bar = tqdm(total=sum(self.frames[i] for i in self.todo), unit="frame", dynamic_ncols=True,
                            desc=f"{len(self.todo)} bag(s)")
        for i in sorted(self.outcomes):
            self._line(self.outcomes[i])

    def frame(self, _event=None, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def finish(self, i: int, outcome: dict) -> None:
        self.outcomes[i] = outcome
        if len(self.jobs) > 1 or outcome["status"] == "done":  # one input's failure is run()'s error line
            self._line(outcome)

    def _line(self, o: dict) -> None:
        from ..io.reference import describe, describe_instances

        if o["status"] == "done":
            per_topic = ", ".join(f"{t}: {v['frames']} frames in {v['sequences']} sequence(s)"
                                  + (f", {describe(v['reference'])}" if "reference" in v else "")
                                  + (f", {describe_instances(v['instances'])}" if "instances" in v else "")
                                  for t, v in o["topics"].items())
            text = f"{o['input']} -> {o['output']}: {o['frames']} frames at {o['fps']:.2f} frames/s ({per_topic})"
        else:
            text = f"{o['input']}: {o['status']}: {o['error']}"
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------------
# Parallel workers: each process loads the model once and converts whole bags.

_worker: dict = {}


def _init_worker(checkpoint: str, device: str, precision: str, threads: int, progress_queue) -> None:
    from ..runtime.backend import set_threads
    from ..runtime.synthesizer import VideoSynthesizer

    set_threads(threads)
    _worker["synth"] = VideoSynthesizer.from_checkpoint(checkpoint, device, precision)
    _worker["queue"] = progress_queue


def _convert_in_worker(src: Path, dest: Path, options, overwrite: bool, checkpoint: str) -> dict:
    q = _worker["queue"]
    return convert_one(src, dest, _worker["synth"], options, overwrite, checkpoint, lambda _: q.put(1))


def _run_parallel(report: _Report, args, options) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = min(args.workers, len(report.todo))
    ctx = multiprocessing.get_context("spawn")
    progress_queue = ctx.Queue()
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(str(args.checkpoint), args.device, args.precision, args.threads,
                                       progress_queue)) as pool:
        futures = {pool.submit(_convert_in_worker, *report.jobs[i], options, args.overwrite,
                               str(args.checkpoint)): i for i in report.todo}
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, report)
                for f in finished:
                    i = futures[f]
                    try:
                        report.finish(i, f.result())
                    except Exception as exc:  # noqa: BLE001 - a worker that died fails its bag only
                        report.finish(i, _outcome(*report.jobs[i], "failed", error=f"worker failed: {exc}"))
            _drain(progress_queue, report)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _drain(progress_queue, report: _Report) -> None:
    while True:
        try:
            n = progress_queue.get_nowait()
        except queue.Empty:
            return
        report.frame(n=n)


# --------------------------------------------------------------------------------------------------
# Ray: one actor per worker slot (a GPU, or a CPU), each loading the model once and converting whole bags.


class BagActor:
    """The body of a Ray actor (wrapped by ray.remote in _run_ray, so that ray stays optional)."""

    def __init__(self, checkpoint: str, device: str, precision: str, threads: int):
        from ..runtime.backend import set_threads
        from ..runtime.synthesizer import VideoSynthesizer

        set_threads(threads)
        self.synth = VideoSynthesizer.from_checkpoint(checkpoint, device, precision)
        self.frames = 0  # generated so far, all bags; read by progress() from the driver

    def _count(self, _event) -> None:
        self.frames += 1

    def convert(self, src, dest, options, overwrite: bool, checkpoint: str) -> dict:
        return convert_one(src, dest, self.synth, options, overwrite, checkpoint, self._count)

    def progress(self) -> int:
        return self.frames


def _run_ray(report: _Report, args, options) -> None:
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs the ray package: pip install 'svsgan[ray]'") from None
    if not report.todo:
        return
    workers = min(args.workers, len(report.todo))
    cuda = args.device.startswith("cuda")
    started = not ray.is_initialized()
    if started:
        if os.environ.get("RAY_ADDRESS"):  # a running cluster: its resources, its dashboard
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=args.no_progress)
        else:
            # address="local": a new instance even where `ray start` left one running (ray.init would join it)
            ray.init(address="local", num_cpus=args.workers, num_gpus=None if cuda else 0, include_dashboard=False,
                     log_to_driver=args.no_progress)
    try:
        actor_cls = ray.remote(max_concurrency=2, **({"num_gpus": 1} if cuda else {"num_cpus": 1}))(BagActor)
        actors = [actor_cls.remote(str(args.checkpoint), args.device, args.precision, args.threads)
                  for _ in range(workers)]
        seen = [0] * workers
        waiting = list(report.todo)
        running: dict = {}  # ObjectRef -> (actor index, job index)

        def submit(a: int) -> None:
            if waiting:
                i = waiting.pop(0)
                ref = actors[a].convert.remote(*report.jobs[i], options, args.overwrite, str(args.checkpoint))
                running[ref] = (a, i)

        def poll() -> None:
            for a, ref in enumerate([x.progress.remote() for x in actors]):
                try:
                    count = ray.get(ref)
                except Exception:  # noqa: BLE001 - a dying actor: its bag's outcome says so
                    continue
                report.frame(n=count - seen[a])
                seen[a] = count

        for a in range(workers):
            submit(a)
        while running:
            finished, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
            for ref in finished:
                a, i = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a dead actor fails its bag only
                    outcome = _outcome(*report.jobs[i], "failed", error=f"Ray worker failed: {exc}")
                    actors[a] = actor_cls.remote(str(args.checkpoint), args.device, args.precision, args.threads)
                    seen[a] = 0
                report.finish(i, outcome)
                submit(a)
            poll()
    finally:
        if started:
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Console entry point for `ros2 run svs_gan_ros convert_bag` (same arguments as `svsgan convert`)."""
    from ..cli import main as cli_main

    return cli_main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
