"""`svsgan demo`: the bundled CARLA-style bag through the conversion code, and what it writes, with the
bag's RGB camera as the reference (the default) and in first-frame mode."""
import cv2
import numpy as np
import pytest
import torch

from svsgan_core.io.bags import BagReader
from svsgan_core.runtime.checkpoint import save_checkpoint
from svsgan_core.cli import main as cli_main
from svsgan_core.commands import demo
from svsgan_core.models.config import preset
from svsgan_core.io.synthetic_bag import (CAMERA_INFO_TOPIC, CLOCK_TOPIC, RGB_COMPRESSED_TOPIC, RGB_TOPIC,
                                          SEMANTIC_TOPIC, write_semantic_bag)
from svsgan_core.io.encoding import LabelDecoder
from svsgan_core.models import SVSGenerator
from svsgan_core.io.rosio import message_to_numpy, rgb_from_msg

FRAMES = 5


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A stand-in for the bundled checkpoint: random weights of the same (tiny) preset."""
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", SVSGenerator(preset("tiny")))


def test_demo_on_a_shortened_sequence_writes_every_promised_file(tmp_path, checkpoint, capsys, one_thread):
    torch.set_num_threads(2)  # torch's own default on a 2-core machine; the demo runs one (DEFAULT_THREADS)
    rc = cli_main(["demo", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "demo"),
                   "--frames", str(FRAMES), "--no-progress"])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert torch.get_num_threads() == 1
    out = tmp_path / "demo"
    assert sorted(p.name for p in out.iterdir()) == ["bag", "contact_sheet.png", "demo.mp4", "summary.txt"]
    summary = (out / "summary.txt").read_text()
    assert summary.strip() in printed.out and f"converted {FRAMES} frames" in summary and "frames/s" in summary
    assert (f"Reference mode: of 1 sequence(s), 1 started from the camera {RGB_COMPRESSED_TOPIC} and 0 in "
            "first-frame mode") in summary
    assert "labels (model input) | camera (reference) | generated" in summary

    with BagReader(out / "bag") as bag:
        assert bag.count(SEMANTIC_TOPIC) == bag.count(demo.OUTPUT_TOPIC) == bag.count(RGB_COMPRESSED_TOPIC) == FRAMES
        assert bag.count(CAMERA_INFO_TOPIC) == FRAMES and bag.count(CLOCK_TOPIC) >= FRAMES  # up to frame 6
        inputs = [(m.timestamp, bag.decode(m).header) for m in bag.messages([SEMANTIC_TOPIC])]
        generated = [(m.timestamp, bag.decode(m)) for m in bag.messages([demo.OUTPUT_TOPIC])]
        camera = [rgb_from_msg(bag.decode(m)) for m in bag.messages([RGB_COMPRESSED_TOPIC])]
    assert inputs == [(t, g.header) for t, g in generated]
    assert all((g.encoding, g.width, g.height) == ("rgb8", 256, 128) for _, g in generated)
    assert np.array_equal(generated[0][1].data.reshape(128, 256, 3), camera[0])  # the sequence starts from it

    assert count_video_frames(out / "demo.mp4", (128, 3 * 256, 3)) == FRAMES  # labels | camera | generated
    sheet = cv2.cvtColor(cv2.imread(str(out / "contact_sheet.png")), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (24 + FRAMES * 128, 3 * 256, 3)
    for row in range(FRAMES):  # each row's middle column is the camera frame of that moment
        assert np.array_equal(sheet[24 + row * 128:24 + (row + 1) * 128, 256:512], camera[row]), row


def count_video_frames(path, shape) -> int:
    video = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        assert frame.shape == shape
        count += 1
    video.release()
    return count


@pytest.mark.parametrize("case", ["--no-reference", "a bag without a camera"])
def test_demo_in_first_frame_mode_says_so_and_shows_two_columns(tmp_path, checkpoint, capsys, one_thread, case):
    frames = 2
    if case == "--no-reference":
        extra, why = ["--no-reference"], "(--no-reference)"
    else:
        bag = write_semantic_bag(tmp_path / "nocam", frames=frames, height=128, width=256, seed=3)
        extra, why = ["--bag", str(bag)], f"(the bag has no RGB camera beside {SEMANTIC_TOPIC}; name one with --reference-topic)"
    out = tmp_path / "demo"
    assert cli_main(["demo", "--checkpoint", str(checkpoint), "--out", str(out), "--frames", str(frames),
                     "--no-progress", *extra]) == 0, capsys.readouterr().err
    summary = (out / "summary.txt").read_text()
    assert f"First-frame mode: the model drew the first frame from the labels alone {why}." in summary
    assert "Reference mode" not in summary and "labels (model input) | generated side by side" in summary
    assert count_video_frames(out / "demo.mp4", (128, 2 * 256, 3)) == frames
    assert cv2.imread(str(out / "contact_sheet.png")).shape == (24 + frames * 128, 2 * 256, 3)
    with BagReader(out / "bag") as bag:
        first = bag.decode(next(bag.messages([demo.OUTPUT_TOPIC]))).data.reshape(128, 256, 3)
        if RGB_COMPRESSED_TOPIC in bag.topics:
            assert not np.array_equal(first, rgb_from_msg(bag.decode(next(bag.messages([RGB_COMPRESSED_TOPIC])))))


def test_demo_takes_the_camera_beside_the_semantic_one_or_the_one_named(tmp_path, checkpoint, capsys, one_thread):
    bag = write_semantic_bag(tmp_path / "raw", frames=2, height=128, width=256, seed=3, rgb=True)  # bgra8 Image
    out = tmp_path / "demo"
    assert cli_main(["demo", "--bag", str(bag), "--checkpoint", str(checkpoint), "--out", str(out),
                     "--no-progress"]) == 0, capsys.readouterr().err
    assert f"1 started from the camera {RGB_TOPIC} and 0 in" in (out / "summary.txt").read_text()
    assert cli_main(["demo", "--bag", str(bag), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "no"),
                     "--reference-topic", "/carla/ego_vehicle/rgb_rear/image"]) == 1
    err = capsys.readouterr().err
    assert "has no topic '/carla/ego_vehicle/rgb_rear/image'; its topics are:" in err and RGB_TOPIC in err
    assert not (tmp_path / "no").exists()


def test_missing_bundled_checkpoint_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEMO_CHECKPOINT", tmp_path / "demo_checkpoint")
    assert cli_main(["demo", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "bundled demo checkpoint is missing" in err and "svsgan train" in err and "--checkpoint" in err
    assert not (tmp_path / "out").exists()


def test_help_says_how_to_use_your_own_bag_and_checkpoint(capsys):
    with pytest.raises(SystemExit) as done:
        cli_main(["demo", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "Your own data" in text and "Reference mode" in text and "first-frame mode" in text
    for option in ("--bag", "--checkpoint", "--topic", "--out", "--frames", "--reference-topic", "--no-reference"):
        assert option in text


def test_bundled_bag_is_a_small_carla_bridge_style_recording():
    files = list(demo.DEMO_BAG.iterdir())
    assert sum(f.stat().st_size for f in files) < 1e6
    with BagReader(demo.DEMO_BAG) as bag:
        assert bag.topics == {CLOCK_TOPIC: "rosgraph_msgs/msg/Clock", SEMANTIC_TOPIC: "sensor_msgs/msg/Image",
                              CAMERA_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
                              RGB_COMPRESSED_TOPIC: "sensor_msgs/msg/CompressedImage"}
        assert {t: bag.count(t) for t in bag.topics} == {t: 60 for t in bag.topics}
        first = bag.decode(next(bag.messages([SEMANTIC_TOPIC])))
        cameras = [bag.decode(m) for m in bag.messages([RGB_COMPRESSED_TOPIC])]
        stamps = [bag.decode(m).header.stamp for m in bag.messages([SEMANTIC_TOPIC])]
    image, encoding = message_to_numpy(first)
    assert (encoding, image.shape) == ("bgra8", (128, 256, 4))
    ids = LabelDecoder("carla_palette", "cityscapes").decode(image, encoding)  # every colour is CARLA's
    assert np.isin(ids, list(range(19)) + [255]).all() and len(np.unique(ids)) > 5
    assert [c.header.stamp for c in cameras] == stamps  # one camera frame per tick, stamped like CARLA does
    assert {c.format for c in cameras} == {"bgra8; jpeg compressed bgr8"}  # image_transport's JPEG of bgra8
    assert rgb_from_msg(cameras[0]).shape == (128, 256, 3)
