"""Offline bag conversion (`svsgan convert`) and bag -> dataset extraction (`svsgan extract`).

Input bags are written here with rosbags' own Writer (not svsgan's), as Humble (.db3 without type
definitions, metadata version 5) and Jazzy (.mcap) recordings; outputs are read back with rosbags
and, for .mcap, with the independent mcap-ros2-support reader.
"""
import hashlib
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from svsgan_core.runtime.checkpoint import save_checkpoint
from svsgan_core.cli import main as cli_main
from svsgan_core.models.config import ModelConfig
from svsgan_core.io.conversion import ConvertOptions, TopicMap, convert_bag, measure_conversion_overhead
from svsgan_core.errors import InputError
from svsgan_core.runtime.synthesizer import VideoSynthesizer
from svsgan_core.io.encoding import encode_palette
from svsgan_core.models import SVSGenerator

ROOT = Path(__file__).resolve().parent.parent
PALETTE_CAM, IDS_CAM, RGB_CAM, INSTANCE_CAM = "/cam0/semantic", "/cam1/semantic", "/cam0/rgb", "/cam0/instance"
FRAMES, H, W = 6, 24, 48
T0 = 5_000_000_000
DT = 50_000_000
BACKWARD_AT = 4  # the ids camera's stamp jumps back 10 s here: a new sequence


pytestmark = pytest.mark.usefixtures("one_thread")


def small_config() -> ModelConfig:
    return ModelConfig(height=32, width=64, dec_channels=[16, 16, 32, 32], img_channels=[8, 8, 16, 16],
                       sem_channels=[8, 8, 16, 16], bottleneck_channels=8, spade_hidden=16, flow_channels=[8, 16],
                       flow_res_blocks=1, d_channels=[8, 16, 16, 32], dv_channels=[8, 16, 32])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small", SVSGenerator(small_config()))


@pytest.fixture(scope="module")
def synth(checkpoint):
    return VideoSynthesizer.from_checkpoint(checkpoint)


def labels(i: int) -> np.ndarray:
    coarse = np.random.default_rng(i).integers(0, 19, (3, 6)).astype(np.uint8)
    return cv2.resize(coarse, (W, H), interpolation=cv2.INTER_NEAREST)


QOS = [Qos(QosHistory.KEEP_LAST, 7, QosReliability.BEST_EFFORT, QosDurability.VOLATILE, QosTime(0, 0),
           QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)]


def write_input(path: Path, storage: str, distro: str, frames: int = FRAMES, rgb: bool = False,
                instances: bool = False) -> Path:
    """A small recording: two semantic cameras (CARLA palette bgra8, mono8 ids), /clock, camera_info, a log;
    `instances`: CARLA's instance camera (bgra8, tag in R, id in G and B) beside the palette camera."""
    store = get_typestore(Stores(f"ros2_{distro}"))
    t = store.types
    plugin = StoragePlugin.SQLITE3 if storage == "db3" else StoragePlugin.MCAP
    with Writer(path, version=9 if distro == "jazzy" else 8, storage_plugin=plugin) as w:
        conns = {
            "/clock": w.add_connection("/clock", "rosgraph_msgs/msg/Clock", typestore=store),
            PALETTE_CAM: w.add_connection(PALETTE_CAM, "sensor_msgs/msg/Image", typestore=store,
                                          offered_qos_profiles=QOS),
            "/cam0/camera_info": w.add_connection("/cam0/camera_info", "sensor_msgs/msg/CameraInfo", typestore=store),
            IDS_CAM: w.add_connection(IDS_CAM, "sensor_msgs/msg/Image", typestore=store),
            "/log": w.add_connection("/log", "std_msgs/msg/String", typestore=store),
        }
        if rgb:
            conns[RGB_CAM] = w.add_connection(RGB_CAM, "sensor_msgs/msg/Image", typestore=store)
        if instances:
            conns[INSTANCE_CAM] = w.add_connection(INSTANCE_CAM, "sensor_msgs/msg/Image", typestore=store)

        def image(ns, frame_id, array, encoding):
            stamp = t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
            header = t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)
            channels = 1 if array.ndim == 2 else array.shape[2]
            return t["sensor_msgs/msg/Image"](header=header, height=array.shape[0], width=array.shape[1],
                                              encoding=encoding, is_bigendian=0, step=array.shape[1] * channels,
                                              data=array.reshape(-1))

        for i in range(frames):
            ns = T0 + i * DT
            stamp = t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
            msgs = [
                ("/clock", ns, t["rosgraph_msgs/msg/Clock"](clock=stamp)),
                (PALETTE_CAM, ns + 1000, image(ns, "cam0", cv2.cvtColor(encode_palette(labels(i), "cityscapes"),
                                                                         cv2.COLOR_RGB2BGRA), "bgra8")),
                ("/cam0/camera_info", ns + 2000, t["sensor_msgs/msg/CameraInfo"](
                    header=t["std_msgs/msg/Header"](stamp=stamp, frame_id="cam0"), height=H, width=W,
                    distortion_model="plumb_bob", d=np.zeros(5), k=np.eye(3).ravel(), r=np.eye(3).ravel(),
                    p=np.zeros(12), binning_x=0, binning_y=0,
                    roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                              do_rectify=False))),
                (IDS_CAM, ns + 3000, image(ns - (10**10 if i >= BACKWARD_AT else 0), "cam1", labels(100 + i), "mono8")),
            ]
            if i % 2 == 0:
                msgs.append(("/log", ns + 4000, t["std_msgs/msg/String"](data=f"frame {i}")))
            if rgb:
                colour = np.random.default_rng(i).integers(0, 256, (H, W, 3)).astype(np.uint8)
                jump = 10**10 if i >= BACKWARD_AT else 0  # follows the ids camera, 3 ms late
                msgs.append((RGB_CAM, ns + 5000, image(ns - jump + 3_000_000, "cam1_rgb", colour, "rgb8")))
            if instances:  # each 6x8 block of the labels its own object, the class's id in R
                ids = (np.arange(H)[:, None] // 6 * 8 + np.arange(W)[None] // 8).astype(np.uint16)
                bgra = np.stack([ids >> 8, ids & 255, labels(i), np.full((H, W), 255)], -1).astype(np.uint8)
                msgs.append((INSTANCE_CAM, ns + 500, image(ns, "cam0", bgra, "bgra8")))
            for topic, bag_ns, msg in msgs:
                w.write(conns[topic], bag_ns, store.serialize_cdr(msg, conns[topic].msgtype))
    if distro == "humble" and storage == "db3":
        _make_humble(path)
    return path


def _make_humble(path: Path) -> None:
    """What Humble's recorder writes: no message definitions or type hashes, metadata version 5."""
    db = next(path.glob("*.db3"))
    con = sqlite3.connect(db)
    con.execute("DELETE FROM message_definitions")
    con.execute("UPDATE topics SET type_description_hash = ''")
    con.commit()
    con.close()
    meta = yaml.safe_load((path / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    info["version"] = 5
    info.pop("ros_distro", None)
    for topic in info["topics_with_message_count"]:
        topic["topic_metadata"].pop("type_description_hash", None)
    (path / "metadata.yaml").write_text(yaml.safe_dump(meta))


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def read_bag(path: Path) -> tuple[dict, dict]:
    """topic -> [(bag time, raw bytes)] and topic -> connection, with rosbags."""
    messages, conns = {}, {}
    with Reader(path) as reader:
        for c in reader.connections:
            conns[c.topic] = c
            messages[c.topic] = []
        for c, ts, data in reader.messages():
            messages[c.topic].append((ts, bytes(data)))
    return messages, conns


def convert_options(**kw) -> ConvertOptions:
    return ConvertOptions([TopicMap(PALETTE_CAM, "/gen0"), TopicMap(IDS_CAM, "/gen1")], **kw)


@pytest.mark.parametrize("storage,distro", [("db3", "humble"), ("mcap", "jazzy")])
def test_conversion_copies_every_message_and_adds_one_frame_per_input(tmp_path, synth, storage, distro):
    src = write_input(tmp_path / "in", storage, distro)
    before = digest(src)
    frames = []
    result = convert_bag(src, tmp_path / "out", synth, convert_options(compressed=True), progress=False,
                         on_frame=frames.append)
    assert digest(src) == before
    assert result.frames == {PALETTE_CAM: FRAMES, IDS_CAM: FRAMES}
    assert result.sequences == {PALETTE_CAM: 1, IDS_CAM: 2}  # the backward stamp restarted the ids camera
    assert [f.new_sequence for f in frames if f.topic == IDS_CAM] == ["first"] + [None] * 3 + ["backward", None]

    inp, in_conns = read_bag(src)
    out, out_conns = read_bag(result.output)
    assert next(result.output.glob(f"*.{storage}"))
    assert set(out) == set(inp) | {"/gen0", "/gen1", "/gen0/compressed", "/gen1/compressed"}
    for topic, msgs in inp.items():
        assert out[topic] == msgs, topic  # same bytes, same bag times, same order
        a, b = in_conns[topic], out_conns[topic]
        assert (b.msgtype, b.ext.serialization_format) == (a.msgtype, a.ext.serialization_format)
        assert b.ext.offered_qos_profiles == a.ext.offered_qos_profiles
        assert b.digest == get_typestore(Stores(f"ros2_{distro}")).hash_rihs01(a.msgtype)
    store = get_typestore(Stores.ROS2_JAZZY)
    for source, target in ((PALETTE_CAM, "/gen0"), (IDS_CAM, "/gen1")):
        assert len(out[target]) == len(out[target + "/compressed"]) == FRAMES
        for (ts_in, raw_in), (ts_out, raw_out), (ts_c, raw_c) in zip(inp[source], out[target],
                                                                      out[target + "/compressed"]):
            src_msg = store.deserialize_cdr(raw_in, "sensor_msgs/msg/Image")
            gen = store.deserialize_cdr(raw_out, "sensor_msgs/msg/Image")
            jpeg = store.deserialize_cdr(raw_c, "sensor_msgs/msg/CompressedImage")
            assert ts_out == ts_c == ts_in
            assert gen.header == jpeg.header == src_msg.header
            assert (gen.encoding, gen.height, gen.width, gen.step) == ("rgb8", H, W, 3 * W)
            assert jpeg.format.startswith("rgb8; jpeg")
        assert out_conns[target].ext.offered_qos_profiles == in_conns[source].ext.offered_qos_profiles
    gen0 = [store.deserialize_cdr(raw, "sensor_msgs/msg/Image") for _, raw in out["/gen0"]]
    assert np.array_equal(gen0[-1].data.reshape(H, W, 3), frames[-2].rgb)

    if storage == "mcap":
        from mcap.reader import make_reader
        from mcap_ros2.decoder import DecoderFactory

        seen: dict[str, list] = {}
        with open(next(result.output.glob("*.mcap")), "rb") as f:
            for _, channel, message, ros_msg in make_reader(f, decoder_factories=[DecoderFactory()]) \
                    .iter_decoded_messages(log_time_order=False):
                seen.setdefault(channel.topic, []).append((message.log_time, bytes(message.data), ros_msg))
        assert {t: len(v) for t, v in seen.items()} == {t: len(v) for t, v in out.items()}
        for topic, msgs in inp.items():
            assert [(ts, raw) for ts, raw, _ in seen[topic]] == msgs
        for source, target in ((PALETTE_CAM, "/gen0"), (IDS_CAM, "/gen1")):
            stamps_in = [(m.header.stamp.sec, m.header.stamp.nanosec) for _, _, m in seen[source]]
            stamps_out = [(m.header.stamp.sec, m.header.stamp.nanosec) for _, _, m in seen[target]]
            assert stamps_out == stamps_in
            assert all(m.encoding == "rgb8" and len(m.data) == H * W * 3 for _, _, m in seen[target])


@pytest.mark.slow  # two spawned workers each import torch
def test_cli_converts_several_bags_in_parallel_workers(tmp_path, checkpoint, capsys):
    a = write_input(tmp_path / "a", "mcap", "jazzy", frames=3, rgb=True, instances=True) / "a.mcap"  # a bare file
    b = write_input(tmp_path / "b", "db3", "humble", frames=3, rgb=True, instances=True)
    options = ConvertOptions([TopicMap(PALETTE_CAM, "/gen", RGB_CAM)], reference_max_dt_s=0.005,  # RGB 3 ms late
                             instances={PALETTE_CAM: INSTANCE_CAM})
    torch.set_num_threads(2)  # as each worker below: the thread count changes the last bits of a frame
    one_process = VideoSynthesizer.from_checkpoint(checkpoint, "cpu", "fp32")
    expected = {name: read_bag(convert_bag(src, tmp_path / "ref" / name, one_process, options,
                                           progress=False).output)[0]["/gen"] for name, src in (("a", a), ("b", b))}
    rc = cli_main(["convert", str(a), str(b), str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                   "--map", f"{PALETTE_CAM}:/gen:{RGB_CAM}", "--reference-max-dt", "0.005",
                   "--instances", f"{PALETTE_CAM}={INSTANCE_CAM}", "--workers", "2", "--threads", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b", "summary.json"]  # the per-input outcomes
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["threads"] for e in summary["inputs"]] == [2, 2]  # --threads is per worker process
    assert [e["topics"][PALETTE_CAM]["reference"]["from_reference"] for e in summary["inputs"]] == [1, 1]
    assert [e["topics"][PALETTE_CAM]["instances"]["paired"] for e in summary["inputs"]] == [3, 3]
    store = get_typestore(Stores.ROS2_JAZZY)
    for name, storage in (("a", "mcap"), ("b", "db3")):
        out, _ = read_bag(tmp_path / "out" / name)
        assert len(out["/gen"]) == 3 and next((tmp_path / "out" / name).glob(f"*.{storage}"))
        assert out["/gen"] == expected[name]  # the same bytes as in one process
        first = store.deserialize_cdr(out["/gen"][0][1], "sensor_msgs/msg/Image").data.reshape(H, W, 3)
        assert np.array_equal(first, np.random.default_rng(0).integers(0, 256, (H, W, 3)))  # the camera's frame


def test_convert_runs_one_thread_unless_told(tmp_path, checkpoint, capsys):
    """The one default of node, convert, eval and demo (svsgan_core.DEFAULT_THREADS), not torch's one per core."""
    a = write_input(tmp_path / "a", "mcap", "jazzy", frames=2)
    b = write_input(tmp_path / "b", "db3", "humble", frames=2)
    torch.set_num_threads(2)  # a process where torch would use two (restored by the one_thread fixture)
    rc = cli_main(["convert", str(a), str(b), str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                   "--map", f"{PALETTE_CAM}:/gen", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["threads"] for e in summary["inputs"]] == [1, 1]


def test_a_missing_topic_is_said_once_with_the_topics_the_bag_has(tmp_path, checkpoint, capsys):
    src = write_input(tmp_path / "in", "mcap", "jazzy", frames=2)
    rc = cli_main(["convert", str(src), str(tmp_path / "out"), "--checkpoint", str(checkpoint),
                   "--map", "/camera/semantic:/gen", "--no-progress"])
    printed = capsys.readouterr()
    assert rc == 1 and f"svsgan convert: error: {src} has no topic '/camera/semantic'" in printed.err
    assert (printed.out + printed.err).count("has no topic") == 1, printed  # not the bag's line and the error too
    assert PALETTE_CAM in printed.err and not (tmp_path / "out").exists()


def test_refuses_to_overwrite_unless_told_and_never_writes_over_its_input(tmp_path, checkpoint, capsys):
    src = write_input(tmp_path / "in", "mcap", "jazzy", frames=2)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    args = ["convert", str(src), str(dest), "--checkpoint", str(checkpoint), "--map", f"{PALETTE_CAM}:/gen",
            "--no-progress"]
    assert cli_main(args) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (dest / "keep.txt").read_text() == "mine"
    assert cli_main(args[:2] + [str(src)] + args[3:] + ["--overwrite"]) == 1
    assert "input is never modified" in capsys.readouterr().err
    assert cli_main(args + ["--overwrite"]) == 0
    assert not (dest / "keep.txt").exists() and len(read_bag(dest)[0]["/gen"]) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


_HOLD_AFTER_FRAMES = 3
_DRIVER = textwrap.dedent(f"""
    import sys, threading
    from svsgan_core.runtime import synthesizer as inference
    step = inference.VideoSynthesizer.step_batch
    count = [0]
    def held(self, *args, **kwargs):
        count[0] += 1
        if count[0] > {_HOLD_AFTER_FRAMES}:  # frames written so far stay in the partial bag
            print("HOLD", flush=True)
            threading.Event().wait()
        return step(self, *args, **kwargs)
    inference.VideoSynthesizer.step_batch = held
    from svsgan_core.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_9_midway_leaves_input_intact_and_no_output_then_a_rerun_completes(tmp_path, checkpoint):
    src = write_input(tmp_path / "in", "db3", "jazzy", frames=FRAMES)
    before = digest(src)
    dest = tmp_path / "out"
    args = ["convert", str(src), str(dest), "--checkpoint", str(checkpoint), "--map", f"{PALETTE_CAM}:/gen",
            "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "HOLD", proc.stderr.read()
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.svsgan-partial-")]
        assert len(partial) == 1 and next(partial[0].rglob("*.db3")).stat().st_size > 0
        assert not dest.exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists()
    assert digest(src) == before
    assert cli_main(args) == 0
    assert len(read_bag(dest)[0]["/gen"]) == FRAMES
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the dead run's leftovers too
    assert digest(src) == before


@pytest.mark.parametrize("storage", ["db3", "mcap"])
def test_truncated_input_is_a_clear_error_naming_topic_and_position(tmp_path, synth, storage):
    src = write_input(tmp_path / "in", storage, "jazzy", frames=FRAMES)
    file = next(src.glob(f"*.{storage}"))
    file.write_bytes(file.read_bytes()[: file.stat().st_size * 2 // 3])
    with pytest.raises(InputError) as err:
        convert_bag(src, tmp_path / "out", synth, convert_options(), progress=False)
    text = str(err.value)
    assert "corrupt or truncated" in text and "messages are intact, the last one topic /" in text, text
    assert "message #" in text and "s into the bag" in text
    assert not (tmp_path / "out").exists()


def test_corrupt_message_names_its_topic_and_position(tmp_path, synth):
    src = write_input(tmp_path / "in", "db3", "jazzy", frames=FRAMES)
    con = sqlite3.connect(next(src.glob("*.db3")))
    (topic_id,) = con.execute("SELECT id FROM topics WHERE name = ?", (IDS_CAM,)).fetchone()
    (row,) = con.execute("SELECT id FROM messages WHERE topic_id = ? ORDER BY timestamp LIMIT 1 OFFSET 2",
                         (topic_id,)).fetchone()
    con.execute("UPDATE messages SET data = ? WHERE id = ?", (b"\x00\x01\x00\x00\x07", row))
    con.commit()
    con.close()
    with pytest.raises(InputError, match=rf"topic {IDS_CAM} message #3 \(bag time \d+ ns, 0\.10\d s into the bag\)"):
        convert_bag(src, tmp_path / "out", synth, convert_options(), progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["in"]


def test_undecodable_labels_name_their_topic_and_position(tmp_path, synth):
    src = write_input(tmp_path / "in", "mcap", "jazzy", frames=2)
    with pytest.raises(InputError, match=rf"topic {IDS_CAM} message #1 .*carla_palette needs a colour image"):
        convert_bag(src, tmp_path / "out", synth,
                    ConvertOptions([TopicMap(IDS_CAM, "/gen")], label_encoding="carla_palette"), progress=False)


# --------------------------------------------------------------------------------------------------
# A reference camera beside the semantic one (--map SOURCE:TARGET:REFERENCE)

REF_CAM = "/cam0/rgb"
# per frame: header stamp of the semantic frame, bag-time offset of its RGB message from the semantic
# message's (negative: recorded before it), the RGB stamp's offset from the semantic stamp, RGB encoding
REFERENCE_PLAN = [
    (T0, 4_000_000, 0, "rgb8"),  # first frame: the camera frame comes after it in bag order
    (T0 + DT, -1_000_000, 0, "rgb8"),
    (T0 + 2 * DT, 2_000_000, 0, "rgb8"),
    (T0 - 10**10, -2_000_000, 0, "rgb8"),  # backward: a new sequence, its camera frame recorded before it
    (T0 - 10**10 + DT, 1_000_000, 0, "rgb8"),
    (T0 - 10**10 + 5 * 10**9, 1_000_000, 3_000_000, "rgb8"),  # gap: the camera's stamp is 3 ms off, no match
    (T0 - 10**10 + 5 * 10**9 + DT, -1_000_000, 0, "rgb8"),
    (T0 + 10**10, 1_000_000, 0, "32FC1"),  # gap: the matching camera frame cannot be an RGB image
]


def camera_frame(i: int) -> np.ndarray:
    return np.random.default_rng(1000 + i).integers(0, 256, (H, W, 3)).astype(np.uint8)


def write_reference_input(path: Path, storage: str = "mcap", plan=REFERENCE_PLAN, dt: int = DT) -> Path:
    """The palette camera and an RGB camera beside it, bag time T0 + i * dt for frame i; see REFERENCE_PLAN."""
    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    plugin = StoragePlugin.SQLITE3 if storage == "db3" else StoragePlugin.MCAP

    def image(ns, frame_id, array, encoding):
        stamp = t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
        return t["sensor_msgs/msg/Image"](header=t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id),
                                          height=H, width=W, encoding=encoding, is_bigendian=0,
                                          step=array.shape[1] * (1 if array.ndim == 2 else array.shape[2]),
                                          data=array.reshape(-1))

    messages = []
    for i, (stamp, bag_offset, stamp_offset, encoding) in enumerate(plan):
        bag_ns = T0 + i * dt
        bgra = cv2.cvtColor(encode_palette(labels(i), "cityscapes"), cv2.COLOR_RGB2BGRA)
        messages.append((bag_ns, PALETTE_CAM, image(stamp, "cam0", bgra, "bgra8")))
        messages.append((bag_ns + bag_offset, REF_CAM, image(stamp + stamp_offset, "cam0_rgb", camera_frame(i),
                                                             encoding)))
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {topic: w.add_connection(topic, "sensor_msgs/msg/Image", typestore=store)
                 for topic in (PALETTE_CAM, REF_CAM)}
        for bag_ns, topic, msg in sorted(messages, key=lambda m: m[0]):
            w.write(conns[topic], bag_ns, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    return path


@pytest.mark.parametrize("storage", ["mcap", "db3"])
def test_each_sequence_starts_from_the_camera_frame_with_its_stamp_before_or_after_it_in_the_bag(
        tmp_path, synth, storage):
    src = write_reference_input(tmp_path / "in", storage)
    before = digest(src)
    frames = []
    result = convert_bag(src, tmp_path / "out", synth,
                         ConvertOptions([TopicMap(PALETTE_CAM, "/gen", REF_CAM)]), progress=False,
                         on_frame=lambda f: frames.append((f, f.camera())))
    assert digest(src) == before
    starts = {i: f.new_sequence for i, (f, _) in enumerate(frames) if f.new_sequence}
    assert starts == {0: "first", 3: "backward", 5: "gap", 7: "gap"}
    for i, (frame, camera) in enumerate(frames):
        if i in (0, 3):  # the camera frame found after (0) and before (3) the semantic message is frame 0
            assert np.array_equal(frame.reference, camera_frame(i)) and np.array_equal(frame.rgb, camera_frame(i))
        else:  # 5: no camera frame within 1 ms; 7: it is no RGB image; both generated from the labels
            assert frame.reference is None and not np.array_equal(frame.rgb, camera_frame(i)), i
        # what the demo shows beside each frame: the camera frame with the same stamp, where there is one
        assert (camera is None) if i in (5, 7) else np.array_equal(camera, camera_frame(i)), i
    assert result.sequences == {PALETTE_CAM: 4}
    ref = result.references[PALETTE_CAM]
    assert (ref["topic"], ref["max_dt_s"], ref["from_reference"], ref["first_frame"], ref["bad"]) == \
        (REF_CAM, 0.001, 2, 2, 1)
    assert ref["first_bad"].startswith(f"topic {REF_CAM} message #8 ") and "32FC1" in ref["first_bad"]
    inp, _ = read_bag(src)
    out, _ = read_bag(result.output)
    assert all(out[topic] == msgs for topic, msgs in inp.items())  # the camera is copied byte for byte too
    gen = [get_typestore(Stores.ROS2_JAZZY).deserialize_cdr(raw, "sensor_msgs/msg/Image") for _, raw in out["/gen"]]
    assert [np.array_equal(g.data.reshape(H, W, 3), f.rgb) for g, (f, _) in zip(gen, frames)] == [True] * 8

    # the same bag in first-frame mode: no frame is the camera's
    plain = convert_bag(src, tmp_path / "plain", synth, ConvertOptions([TopicMap(PALETTE_CAM, "/gen")]),
                        progress=False)
    assert plain.references == {} and read_bag(plain.output)[0]["/gen"][0] != out["/gen"][0]


def test_convert_says_how_each_sequence_started_and_a_wider_tolerance_finds_the_offset_frame(
        tmp_path, checkpoint, capsys):
    src = write_reference_input(tmp_path / "in")
    args = ["convert", str(src), str(tmp_path / "out"), "--checkpoint", str(checkpoint),
            "--map", f"{PALETTE_CAM}:/gen:{REF_CAM}", "--no-progress"]
    assert cli_main(args) == 0
    line = capsys.readouterr().out
    assert (f"{PALETTE_CAM}: 8 frames in 4 sequence(s), 2 started from the camera {REF_CAM} and 2 in first-frame "
            f"mode (no usable {REF_CAM} frame within 1 ms of its stamp); 1 bad reference message(s) skipped, the "
            f"first: topic {REF_CAM} message #8") in line, line
    assert cli_main(args[:2] + [str(tmp_path / "wide")] + args[3:] + ["--reference-max-dt", "0.004"]) == 0
    assert "3 started from the camera" in capsys.readouterr().out  # frame 5's camera frame, 3 ms off
    args[6] = f"{PALETTE_CAM}:/gen:/no/camera"
    assert cli_main(args[:2] + [str(tmp_path / "none")] + args[3:]) == 1
    assert f"{src} has no topic '/no/camera'; its topics are:\n  {REF_CAM} (sensor_msgs" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_the_reference_cursor_keeps_only_a_few_messages_of_a_long_camera_topic(tmp_path):
    from svsgan_core.io.reference import KEEP, ReferenceCursor

    dt = 10_000_000  # 100 Hz: the 0.5 s window alone would hold 50 of them
    plan = [(T0 + i * dt, 0, 0, "rgb8") for i in range(12 * KEEP)]
    src = write_reference_input(tmp_path / "in", plan=plan, dt=dt)
    with ReferenceCursor(src, REF_CAM) as cursor:
        for i in (0, 10 * KEEP, 12 * KEEP - 1):  # sequences start rarely: catching up must not hoard the rest
            assert np.array_equal(cursor.image(T0 + i * dt, T0 + i * dt), camera_frame(i))
            assert len(cursor._window) <= 2 * KEEP
        assert cursor.image(T0 + 3 * dt, T0 + 12 * KEEP * dt) is None  # long gone: not kept
        assert cursor.bad == 0


def test_measure_conversion_overhead_reports_both_rates(synth):
    numbers = measure_conversion_overhead(synth, frames=2, height=H, width=W, repeats=1)
    assert numbers["frames"] == 2 and numbers["bare_fps"] > 0 and numbers["convert_fps"] > 0
    assert numbers["overhead_pct"] == pytest.approx((numbers["bare_fps"] / numbers["convert_fps"] - 1) * 100)


# --------------------------------------------------------------------------------------------------
# svsgan extract


def test_extraction_pairs_by_stamp_splits_sequences_and_loads_in_the_dataset_class(tmp_path):
    from svsgan_core.data.datasets import CarlaRecordingDataset
    from svsgan_core.data.layouts import find_sequences, read_image, read_label
    from svsgan_core.data.labels import map_labels

    src = write_input(tmp_path / "in", "mcap", "jazzy", frames=FRAMES, rgb=True)
    before = digest(src)
    dest = tmp_path / "data"
    assert cli_main(["extract", str(src), str(dest), "--rgb", RGB_CAM, "--labels", PALETTE_CAM,
                     "--max-dt", "0.005", "--no-progress"]) == 0
    info = yaml.safe_load((dest / "dataset.yaml").read_text())
    assert info["label_space"] == "carla" and info["labels_topic"] == PALETTE_CAM
    sequences = find_sequences("carla", dest)
    assert [(s.name, len(s)) for s in sequences] == [("in_000", BACKWARD_AT)]  # the RGB camera jumps away then
    for i, frame in enumerate(sequences[0].frames):
        assert np.array_equal(map_labels(read_label(frame.label), "carla", "cityscapes"), labels(i))
        assert np.array_equal(read_image(frame.image), np.random.default_rng(i).integers(0, 256, (H, W, 3)))
    item = CarlaRecordingDataset(dest, (16, 32), BACKWARD_AT)[0]
    assert item["images"].shape == (BACKWARD_AT, 3, 16, 32) and item["labels"].shape == (BACKWARD_AT, 16, 32)

    ids = tmp_path / "ids"  # both cameras jump back 10 s together: a second sequence
    assert cli_main(["extract", str(src), str(ids), "--rgb", RGB_CAM, "--labels", IDS_CAM, "--max-dt", "0.005",
                     "--no-progress"]) == 0
    sequences = find_sequences("folder", ids)
    assert [(s.name, len(s), s.label_space) for s in sequences] == [
        ("in_000", BACKWARD_AT, "cityscapes"), ("in_001", FRAMES - BACKWARD_AT, "cityscapes")]
    assert np.array_equal(read_label(sequences[1].frames[0].label), labels(100 + BACKWARD_AT))

    assert cli_main(["extract", str(src), str(tmp_path / "none"), "--rgb", RGB_CAM, "--labels", PALETTE_CAM,
                     "--max-dt", "0.002", "--no-progress"]) == 1  # 3 ms apart: nothing pairs
    assert not (tmp_path / "none").exists()
    assert digest(src) == before


def test_a_damaged_mcap_whose_chunk_unpacks_past_its_declared_size_is_diagnosed_without_unpacking_it(tmp_path, synth):
    """The diagnosis of a bag rosbags cannot open walks its chunks; a chunk that declares 64 bytes but
    holds 64 MiB of zstd zeros (a decompression bomb) is reported as damage, and the walk never holds
    more than the declared size of it."""
    import tracemalloc

    from backports import zstd

    bomb = zstd.compress(bytes(64 << 20))
    compression = b"zstd"
    body = (struct.pack("<QQQI", 0, 0, 64, 0) + struct.pack("<I", len(compression)) + compression
            + struct.pack("<Q", len(bomb)) + bomb)
    src = tmp_path / "in"
    src.mkdir()
    (src / "in.mcap").write_bytes(b"\x89MCAP0\r\n" + struct.pack("<BQ", 0x06, len(body)) + body)  # no footer
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as err:
            convert_bag(src, tmp_path / "out", synth, convert_options(), progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "corrupt or truncated" in str(err.value) and "unpacks to more than the 64 bytes it declares" in str(err.value), \
        str(err.value)
    assert peak < 16 << 20, peak
    assert not (tmp_path / "out").exists()
