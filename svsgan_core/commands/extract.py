"""Turn a recorded bag (an RGB camera and a semantic camera) into a training dataset.

Frames are paired by header stamp: each label frame takes the nearest RGB frame within --max-dt
(each RGB frame is used once; unpaired frames are left out and counted). Pairs follow the label
topic's order and are split into sequences where the stamps jump, by the node's rule: backwards,
or forwards by more than --reset-gap. The output is the generic sequence-folder layout
(docs/datasets.md) that `CarlaRecordingDataset` (label_space carla / carla_legacy) and
`SequenceFolderDataset` read:

  OUT_DIR/dataset.yaml                         label_space, source bag, topics
  OUT_DIR/<bag>_000/images/000000.png          RGB
  OUT_DIR/<bag>_000/labels/000000.png          class ids as the recording encodes them
  OUT_DIR/<bag>_000/instances/000000.png       with --instances: the instance ids of the label frame's exact
                                               stamp (CARLA's instance camera as it is, mono ids as 16-bit)

Labels are stored in the recording's own space (CARLA tags for CARLA palette or raw input; the
--label-space for class-id input) and mapped to the model's space when training. OUT_DIR appears
only when complete.

Example:
  svsgan extract drive.mcap data/carla_drive --rgb /carla/ego_vehicle/rgb_front/image \\
      --labels /carla/ego_vehicle/semantic_segmentation_front/image
  svsgan extract drive.mcap data/my_drive --rgb /camera/image_raw   # RGB only: then svsgan pseudo-label
  svsgan extract drive.mcap data/carla_drive --rgb /carla/hero/rgb/image \
      --labels /carla/hero/semantic_segmentation/image --instances /carla/hero/instance_segmentation/image
"""
from __future__ import annotations

import argparse
import bisect
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", help="the recording: a bag folder or a .db3/.mcap file")
    p.add_argument("out_dir", help="dataset folder to create")
    p.add_argument("--rgb", required=True, metavar="TOPIC", help="RGB camera topic (Image or CompressedImage)")
    p.add_argument("--labels", metavar="TOPIC", help="semantic camera topic (Image or CompressedImage); without it "
                   "only the RGB frames are written, to be labelled with `svsgan pseudo-label OUT_DIR OUT_DIR`")
    p.add_argument("--instances", metavar="TOPIC",
                   help="instance-segmentation topic recorded beside --labels (CARLA's bgra8 instance camera, or "
                        "mono8/mono16/32SC1 ids): the image with a label frame's exact header stamp is written to "
                        "instances/ (the datasets' instance maps); frames without one are written without")
    p.add_argument("--label-encoding", default="auto", choices=("auto", "ids", "carla_palette", "carla_raw"),
                   help="auto: class ids for mono8/mono16 images, CARLA palette colours for colour images")
    p.add_argument("--label-space", default="cityscapes",
                   help="label space of class-id input (default: cityscapes); CARLA input is stored as CARLA tags")
    p.add_argument("--carla-version", default="0.9.14", help="CARLA tag numbering of carla_raw input (default: 0.9.14)")
    p.add_argument("--max-dt", type=float, default=0.02, metavar="SECONDS",
                   help="largest stamp difference of a paired RGB and label frame (default: 0.02)")
    p.add_argument("--reset-gap", type=float, default=1.0, metavar="SECONDS",
                   help="a forward stamp jump larger than this starts a new sequence (default: 1.0)")
    p.add_argument("--typestore", default=None, help="ROS 2 distribution of a bag that stores no type definitions")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT_DIR")
    p.add_argument("--no-progress", action="store_true")


@dataclass
class ExtractResult:
    output: Path
    label_space: str
    sequences: dict[str, int]  # name -> frames
    unpaired_labels: int
    unpaired_rgb: int
    duplicates: int
    with_instances: int = 0  # frames written with an instance map
    bad_instances: int = 0  # instance images that did not decode or had another size than their labels
    first_bad_instance: str | None = None

    @property
    def frames(self) -> int:
        return sum(self.sequences.values())


def pair_by_stamp(label_stamps: list[int], rgb_stamps: list[int], max_dt_ns: int) -> dict[int, int]:
    """label index -> rgb index: nearest stamps within `max_dt_ns`, each RGB frame used once (closest wins)."""
    order = sorted(range(len(rgb_stamps)), key=rgb_stamps.__getitem__)
    sorted_stamps = [rgb_stamps[i] for i in order]
    candidates = []
    for li, stamp in enumerate(label_stamps):
        k = bisect.bisect_left(sorted_stamps, stamp)
        for j in (k - 1, k, k + 1):
            if 0 <= j < len(sorted_stamps) and abs(sorted_stamps[j] - stamp) <= max_dt_ns:
                candidates.append((abs(sorted_stamps[j] - stamp), li, order[j]))
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for _, li, ri in sorted(candidates):
        if li not in pairs and ri not in used:
            pairs[li] = ri
            used.add(ri)
    return pairs


def _label_decoder(encoding_choice: str, ros_encoding: str, label_space: str, carla_version: str):
    from ..data.labels import carla_space_for_version
    from ..io.conversion import resolve_label_encoding
    from ..io.encoding import LabelDecoder

    choice = resolve_label_encoding(encoding_choice, ros_encoding)
    if choice == "ids":
        return LabelDecoder("ids", label_space, label_space)
    if choice == "carla_raw":
        space = carla_space_for_version(carla_version)
        return LabelDecoder("carla_raw", space, carla_version=carla_version)
    return LabelDecoder("carla_palette", "carla")


def extract_bag(bag_path: str | os.PathLike, out_dir: str | os.PathLike, rgb_topic: str, labels_topic: str, *,
                label_encoding: str = "auto", label_space: str = "cityscapes", carla_version: str = "0.9.14",
                max_dt: float = 0.02, reset_gap: float = 1.0, typestore: str | None = None,
                overwrite: bool = False, progress: bool = True, instances_topic: str | None = None) -> ExtractResult:
    from ..data.layouts import write_dataset_info, write_frame
    from ..io.bags import AtomicDirectory, BagReader
    from ..io.rosio import instances_from_msg, label_image, rgb_from_msg
    from ..io.timeline import SequenceTimeline, stamp_to_ns

    from ..data.labels import get_label_space

    get_label_space(label_space, "--label-space")  # refused whatever the input, before any work
    SequenceTimeline(reset_gap)  # so is a --reset-gap out of range
    if not max_dt >= 0:
        raise InputError(f"--max-dt must be zero or positive, got {max_dt}")
    if rgb_topic == labels_topic:
        raise InputError("--rgb and --labels name the same topic")
    if instances_topic is not None and instances_topic in (rgb_topic, labels_topic):
        raise InputError("--instances names the --rgb or --labels topic; name the instance camera's own topic")
    topics = [rgb_topic, labels_topic] + ([instances_topic] if instances_topic else [])
    with BagReader(bag_path, typestore) as bag:
        for topic in topics:
            bag.require(topic)
        stamps: dict[str, list[int]] = {topic: [] for topic in topics}
        for msg in bag.messages(topics):
            stamps[msg.connection.topic].append(stamp_to_ns(bag.decode(msg).header.stamp))
        pairs = pair_by_stamp(stamps[labels_topic], stamps[rgb_topic], round(max_dt * 1e9))
        instance_at: dict[int, int] = {}  # header stamp -> instance message index; exact stamps, as the node pairs
        for index, stamp in enumerate(stamps.get(instances_topic, [])):
            instance_at.setdefault(stamp, index)

        # sequences, in label order; a repeated stamp is the same frame again and is left out
        timeline = SequenceTimeline(reset_gap)
        name = (bag.path.stem if bag.path.is_file() else bag.path.name) or "bag"
        slot: dict[int, tuple[str, int]] = {}
        sequences: dict[str, int] = {}
        duplicates = 0
        current = None
        for li in sorted(pairs):
            if timeline.observe(stamps[labels_topic][li]) is not None:
                current = f"{name}_{len(sequences):03d}"
                sequences[current] = 0
            elif timeline.is_duplicate:
                duplicates += 1
                continue
            slot[li] = (current, sequences[current])
            sequences[current] += 1
        wanted_rgb = {pairs[li]: li for li in slot}
        wanted_instances = {instance_at[stamps[labels_topic][li]]: li for li in slot
                            if stamps[labels_topic][li] in instance_at}
        expects_instances = set(wanted_instances.values())
        if not slot:
            raise InputError(f"{bag.path}: no frame of {labels_topic} has an {rgb_topic} frame within {max_dt} s "
                             f"({len(stamps[labels_topic])} label and {len(stamps[rgb_topic])} RGB frames); "
                             "check the topics or raise --max-dt")

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(slot), desc=name, unit="frame", dynamic_ncols=True)
        decoder = None
        pending_rgb: dict[int, object] = {}
        pending_labels: dict[int, object] = {}
        pending_instances: dict[int, object] = {}  # label index -> ids, or None for a bad instance image
        instance_counts = {"with": 0, "bad": 0, "first_bad": None}

        def bad_instance(text: str) -> None:
            instance_counts["bad"] += 1
            instance_counts["first_bad"] = instance_counts["first_bad"] or text

        with AtomicDirectory(out_dir, overwrite, inputs=[bag.path]) as target:
            root = target.path
            try:
                for msg in bag.messages(topics):
                    is_label = msg.connection.topic == labels_topic
                    if msg.connection.topic == instances_topic:
                        if msg.index in wanted_instances:
                            li = wanted_instances[msg.index]
                            try:
                                pending_instances[li] = instances_from_msg(bag.decode(msg))
                            except InputError as exc:
                                pending_instances[li] = None
                                bad_instance(f"{bag.where(msg)}: {exc}")
                    elif is_label and msg.index in slot:
                        ros_msg = bag.decode(msg)
                        try:
                            array, encoding = label_image(ros_msg)
                            if decoder is None:
                                decoder = _label_decoder(label_encoding, encoding, label_space, carla_version)
                            pending_labels[msg.index] = decoder.decode(array, encoding)
                        except InputError as exc:
                            raise InputError(f"{bag.path}: {bag.where(msg)}: {exc}") from None
                    elif not is_label and msg.index in wanted_rgb:
                        try:
                            pending_rgb[wanted_rgb[msg.index]] = rgb_from_msg(bag.decode(msg))
                        except InputError as exc:
                            raise InputError(f"{bag.path}: {bag.where(msg)}: {exc}") from None
                    for li in [li for li in pending_labels if li in pending_rgb
                               and (li not in expects_instances or li in pending_instances)]:
                        sequence, index = slot[li]
                        labels, ids = pending_labels.pop(li), pending_instances.pop(li, None)
                        if ids is not None and ids.shape != labels.shape:
                            bad_instance(f"{instances_topic} at the stamp of {labels_topic} #{li}: instance image "
                                         f"{ids.shape[1]}x{ids.shape[0]} but labels {labels.shape[1]}x{labels.shape[0]}")
                            ids = None
                        write_frame(root, sequence, index, pending_rgb.pop(li), labels, ids)
                        instance_counts["with"] += ids is not None
                        if bar is not None:
                            bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
            extra = {"carla_version": carla_version} if decoder.encoding == "carla_raw" else {}
            if instances_topic:
                extra["instances_topic"] = instances_topic
            write_dataset_info(root, decoder.target.name, source=str(bag.path), rgb_topic=rgb_topic,
                               labels_topic=labels_topic, max_dt=max_dt, reset_gap=reset_gap, **extra)
            output = target.commit()
    return ExtractResult(output, decoder.target.name, sequences, len(stamps[labels_topic]) - len(pairs),
                         len(stamps[rgb_topic]) - len(pairs), duplicates, instance_counts["with"],
                         instance_counts["bad"], instance_counts["first_bad"])


def extract_rgb(bag_path: str | os.PathLike, out_dir: str | os.PathLike, rgb_topic: str, *, reset_gap: float = 1.0,
                typestore: str | None = None, overwrite: bool = False) -> ExtractResult:
    """A drive recorded without a semantic camera: RGB frames only, sequences split by the same time rule.

    dataset.yaml names no label space yet; `svsgan pseudo-label` writes the labels and the label space.
    """
    import yaml

    from ..data.layouts import DATASET_FILE, folder_frame, frame_name, write_image
    from ..io.bags import AtomicDirectory, BagReader
    from ..io.rosio import rgb_from_msg
    from ..io.timeline import SequenceTimeline, stamp_to_ns

    with BagReader(bag_path, typestore) as bag:
        bag.require(rgb_topic)
        name = (bag.path.stem if bag.path.is_file() else bag.path.name) or "bag"
        timeline = SequenceTimeline(reset_gap)
        sequences: dict[str, int] = {}
        duplicates = 0
        with AtomicDirectory(out_dir, overwrite, inputs=[bag.path]) as target:
            current = None
            for msg in bag.messages([rgb_topic]):
                ros_msg = bag.decode(msg)
                if timeline.observe(stamp_to_ns(ros_msg.header.stamp)) is not None:
                    current = f"{name}_{len(sequences):03d}"
                    sequences[current] = 0
                elif timeline.is_duplicate:
                    duplicates += 1
                    continue
                try:
                    rgb = rgb_from_msg(ros_msg)
                except InputError as exc:
                    raise InputError(f"{bag.path}: {bag.where(msg)}: {exc}") from None
                write_image(folder_frame(target.path / current, frame_name(sequences[current]), ".png").image, rgb)
                sequences[current] += 1
            if not sequences:
                raise InputError(f"{bag.path}: no {rgb_topic} frames")
            (target.path / DATASET_FILE).write_text(yaml.safe_dump(
                {"format": "svsgan-sequences", "version": 1, "labels": "none yet: run svsgan pseudo-label",
                 "source": str(bag.path), "rgb_topic": rgb_topic, "reset_gap": reset_gap}, sort_keys=False))
            output = target.commit()
    return ExtractResult(output, "", sequences, 0, 0, duplicates)


def run(args: argparse.Namespace) -> int:
    if args.labels is None:
        if args.instances:
            raise InputError("--instances needs --labels: instance maps go with label maps")
        result = extract_rgb(args.bag, args.out_dir, args.rgb, reset_gap=args.reset_gap, typestore=args.typestore,
                             overwrite=args.overwrite)
        print(f"{result.output}: {result.frames} RGB frames in {len(result.sequences)} sequence(s), no labels; "
              f"left out {result.duplicates} repeated stamps. Next: svsgan pseudo-label {result.output} "
              f"{result.output} --segmenter PATH")
        return 0
    result = extract_bag(args.bag, args.out_dir, args.rgb, args.labels, label_encoding=args.label_encoding,
                         label_space=args.label_space, carla_version=args.carla_version, max_dt=args.max_dt,
                         reset_gap=args.reset_gap, typestore=args.typestore, overwrite=args.overwrite,
                         progress=not args.no_progress, instances_topic=args.instances)
    print(f"{result.output}: {result.frames} frame pairs in {len(result.sequences)} sequence(s), labels as "
          f"{result.label_space}; left out: {result.unpaired_labels} label and {result.unpaired_rgb} RGB frames "
          f"without a partner within the tolerance, {result.duplicates} repeated stamps")
    if args.instances:
        print(f"instance maps for {result.with_instances} of them from {args.instances} (the others have no "
              f"instance image of their exact stamp, or a bad one: they train on semantic edges)"
              + (f"; {result.bad_instances} bad instance image(s), the first: {result.first_bad_instance}"
                 if result.bad_instances else ""))
    return 0
