"""`svsgan convert --instances SOURCE=TOPIC` and `svsgan extract --instances TOPIC`: the instance camera
recorded beside a semantic camera, paired by exact header stamp as the node pairs it.

Conversion hands the ids to the generator with the labels (a recording stand-in for the synthesizer
shows what it got, frame by frame) and stays lossless: a frame whose instance image is missing, bad or of
another size is generated from its labels alone and counted. Extraction writes the ids as the dataset's
instance maps. (Byte-identical output under --workers 2 and --executor ray with an instance topic:
tests/test_bags.py and tests/test_ray_convert.py.)
"""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from svsgan_core.cli import main as cli_main
from svsgan_core.commands.convert import parse_instances
from svsgan_core.commands.extract import extract_bag
from svsgan_core.data.instances import carla_instance_key, instance_colour_image
from svsgan_core.data.labels import get_label_space
from svsgan_core.data.layouts import find_sequences, read_instances, read_label
from svsgan_core.errors import InputError
from svsgan_core.io.conversion import ConvertOptions, TopicMap, convert_bag

SEM, INST, RGB = "/cam/semantic", "/cam/instance", "/cam/rgb"
H, W = 12, 20
T0, DT = 7_000_000_000, 50_000_000
CAR = get_label_space("cityscapes").index("car")


def scene(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (road with one car-coloured blob) and the ids that split the blob into two cars, moving."""
    labels = np.zeros((H, W), np.uint8)
    labels[3:9, 2 + i: 16 + i % 3] = CAR
    ids = np.where(labels == CAR, 1, 0).astype(np.int32)
    ids[:, 9 + i % 3:] *= 2
    return labels, ids


# (how frame i's instance image is recorded, what the generator should get)
PLAN = ["carla_before", "mono16_after", "missing", "wrong_size", "truncated", "stamp_off_by_1ns", "32sc1"]
PAIRED = {0, 1, 6}


def write_bag(path: Path) -> Path:
    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types

    def image(ns, array, encoding, data=None):
        stamp = t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
        channels = 1 if array.ndim == 2 else array.shape[2]
        raw = np.ascontiguousarray(array).view(np.uint8).reshape(-1) if data is None else data
        return t["sensor_msgs/msg/Image"](header=t["std_msgs/msg/Header"](stamp=stamp, frame_id="cam"),
                                          height=array.shape[0], width=array.shape[1], encoding=encoding,
                                          is_bigendian=0, step=array.shape[1] * channels * array.itemsize, data=raw)

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {topic: w.add_connection(topic, "sensor_msgs/msg/Image", typestore=store) for topic in (SEM, INST, RGB)}

        def put(topic, bag_ns, msg):
            w.write(conns[topic], bag_ns, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))

        for i, how in enumerate(PLAN):
            ns = T0 + i * DT
            labels, ids = scene(i)
            if how == "carla_before":  # CARLA's instance camera, recorded before its semantic frame
                put(INST, ns + 1000, image(ns, instance_colour_image((13 << 16) | ids)[..., [2, 1, 0]], "bgr8"))
            put(SEM, ns + 2000, image(ns, labels, "mono8"))
            put(RGB, ns + 3000, image(ns, np.full((H, W, 3), 10 * i, np.uint8), "rgb8"))
            if how == "mono16_after":
                put(INST, ns + 4000, image(ns, ids.astype(np.uint16), "mono16"))
            elif how == "wrong_size":
                put(INST, ns + 4000, image(ns, np.zeros((H, W + 4), np.uint16), "mono16"))
            elif how == "truncated":
                put(INST, ns + 4000, image(ns, ids.astype(np.uint16), "mono16", data=np.zeros(7, np.uint8)))
            elif how == "stamp_off_by_1ns":
                put(INST, ns + 4000, image(ns + 1, ids.astype(np.uint16), "mono16"))
            elif how == "32sc1":
                put(INST, ns + 4000, image(ns, ids, "32SC1"))
    return path


class RecordingSynth:
    """Stands in for VideoSynthesizer: remembers what each step got, returns a frame of the step number."""

    label_space = get_label_space("cityscapes")

    def __init__(self):
        self.calls = []

    def stream(self):
        return SimpleNamespace()

    def reset(self, reference_image=None, stream=None):
        pass

    def step(self, labels, **kw):
        self.calls.append((labels.copy(), kw))
        return np.full(labels.shape + (3,), len(self.calls), np.uint8)


def expected_ids(i: int) -> np.ndarray:
    ids = scene(i)[1]
    return carla_instance_key(np.full((H, W), 13, np.uint8), ids.astype(np.uint16)) if i == 0 else ids


def test_conversion_hands_each_frame_the_instance_ids_of_its_exact_stamp_and_counts_the_rest(tmp_path):
    src = write_bag(tmp_path / "in")
    synth = RecordingSynth()
    events = []
    options = ConvertOptions([TopicMap(SEM, "/gen")], label_encoding="ids", instances={SEM: INST})
    result = convert_bag(src, tmp_path / "out", synth, options, progress=False, on_frame=events.append)
    assert len(synth.calls) == len(PLAN) == result.frames[SEM]  # lossless: every semantic frame generated
    for i, (labels, kw) in enumerate(synth.calls):
        np.testing.assert_array_equal(labels, scene(i)[0])
        assert set(kw) == {"stream", "instances"}
        if i in PAIRED:
            np.testing.assert_array_equal(kw["instances"], expected_ids(i))
            np.testing.assert_array_equal(events[i].instances, expected_ids(i))
        else:
            assert kw["instances"] is None and events[i].instances is None, PLAN[i]
    counts = result.instances[SEM]
    assert (counts["topic"], counts["paired"], counts["without"], counts["bad"]) == (INST, 3, 4, 2)
    assert counts["first_bad"]
    with Reader(result.output) as r:  # the instance topic is copied like every other
        assert {c.topic: c.msgcount for c in r.connections} == {SEM: 7, INST: 6, RGB: 7, "/gen": 7}


def test_a_map_without_instances_calls_the_model_exactly_as_before(tmp_path):
    class OldSynth(RecordingSynth):
        def step(self, labels, stream=None):  # a synthesizer that predates instances
            return super().step(labels, stream=stream)

    synth = OldSynth()
    result = convert_bag(write_bag(tmp_path / "in"), tmp_path / "out", synth,
                         ConvertOptions([TopicMap(SEM, "/gen")], label_encoding="ids"), progress=False)
    assert result.frames[SEM] == len(PLAN) and result.instances == {}
    assert all(set(kw) == {"stream"} for _, kw in synth.calls)


def test_instance_options_are_checked_before_any_work(tmp_path, capsys):
    assert parse_instances([f"{SEM}={INST}"]) == {SEM: INST}
    for bad in (f"{SEM}:{INST}", f"={INST}", f"{SEM}="):
        with pytest.raises(InputError, match="SOURCE=INSTANCE_TOPIC"):
            parse_instances([bad])
    with pytest.raises(InputError, match="twice"):
        parse_instances([f"{SEM}={INST}", f"{SEM}=/other"])
    maps = [TopicMap(SEM, "/gen")]
    with pytest.raises(InputError, match="no --map has as its source"):
        ConvertOptions(maps, instances={"/nope": INST}).validate()
    with pytest.raises(InputError, match="is a semantic source, a target or a reference"):
        ConvertOptions(maps, instances={SEM: "/gen"}).validate()
    with pytest.raises(InputError, match="not a valid ROS 2 topic name"):
        ConvertOptions(maps, instances={SEM: "cam/instance"}).validate()
    src = write_bag(tmp_path / "in")
    with pytest.raises(InputError, match="/cam/missing"):
        convert_bag(src, tmp_path / "out", RecordingSynth(),
                    ConvertOptions(maps, label_encoding="ids", instances={SEM: "/cam/missing"}), progress=False)
    assert not (tmp_path / "out").exists()


def test_extract_writes_the_paired_instance_ids_as_the_datasets_instance_maps(tmp_path):
    src = write_bag(tmp_path / "in")
    result = extract_bag(src, tmp_path / "data", RGB, SEM, label_encoding="ids", instances_topic=INST,
                         max_dt=0.0, progress=False)
    assert result.frames == len(PLAN) and result.with_instances == 3 and result.bad_instances == 2
    [seq] = find_sequences("folder", tmp_path / "data")
    assert [f.instance is not None for f in seq.frames] == [i in PAIRED for i in range(len(PLAN))]
    for i, frame in enumerate(seq.frames):
        np.testing.assert_array_equal(read_label(frame.label), scene(i)[0])
        if frame.instance is not None:
            np.testing.assert_array_equal(read_instances(frame.instance), expected_ids(i))
    import yaml

    assert yaml.safe_load((tmp_path / "data" / "dataset.yaml").read_text())["instances_topic"] == INST


def test_cli_convert_and_extract_report_instance_pairing(tmp_path, capsys):
    from svsgan_core.models import SVSGenerator
    from svsgan_core.models.config import ModelConfig
    from svsgan_core.runtime.checkpoint import save_checkpoint

    config = ModelConfig(height=16, width=32, dec_channels=[8, 8, 8, 8], img_channels=[4, 4, 8, 8],
                         sem_channels=[4, 4, 8, 8], bottleneck_channels=4, spade_hidden=8, flow_channels=[4, 8],
                         flow_res_blocks=1, d_channels=[4, 8, 8, 8], dv_channels=[4, 8, 8])
    ckpt = save_checkpoint(tmp_path / "ckpt", SVSGenerator(config))
    src = write_bag(tmp_path / "in")
    assert cli_main(["convert", str(src), str(tmp_path / "out"), "--checkpoint", str(ckpt), "--map", f"{SEM}:/gen",
                     "--instances", f"{SEM}={INST}", "--label-encoding", "ids", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"3 with instance ids from {INST}, 4 from the labels alone" in out and "2 bad instance image(s)" in out
    assert cli_main(["extract", str(src), str(tmp_path / "data"), "--rgb", RGB, "--labels", SEM, "--instances", INST,
                     "--label-encoding", "ids", "--no-progress"]) == 0
    assert "instance maps for 3 of them" in capsys.readouterr().out
