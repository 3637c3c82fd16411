"""`svsgan demo`: the bundled CARLA-style bag through the conversion code, and what it writes."""
import cv2
import numpy as np
import pytest
import torch

from svsgan_core.io.bags import BagReader
from svsgan_core.runtime.checkpoint import save_checkpoint
from svsgan_core.cli import main as cli_main
from svsgan_core.commands import demo
from svsgan_core.models.config import preset
from svsgan_core.io.synthetic_bag import CAMERA_INFO_TOPIC, CLOCK_TOPIC, RGB_COMPRESSED_TOPIC, SEMANTIC_TOPIC
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

    with BagReader(out / "bag") as bag:
        assert bag.count(SEMANTIC_TOPIC) == bag.count(demo.OUTPUT_TOPIC) == FRAMES
        assert bag.count(CAMERA_INFO_TOPIC) == FRAMES and bag.count(CLOCK_TOPIC) >= FRAMES  # up to frame 6
        inputs = [(m.timestamp, bag.decode(m).header) for m in bag.messages([SEMANTIC_TOPIC])]
        generated = [(m.timestamp, bag.decode(m)) for m in bag.messages([demo.OUTPUT_TOPIC])]
    assert inputs == [(t, g.header) for t, g in generated]
    assert all((g.encoding, g.width, g.height) == ("rgb8", 256, 128) for _, g in generated)

    video = cv2.VideoCapture(str(out / "demo.mp4"))
    count = 0
    while True:
        ok, frame = video.read()
        if not ok:
            break
        assert frame.shape == (128, 512, 3)
        count += 1
    video.release()
    assert count == FRAMES
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape == (24 + FRAMES * 128, 512, 3)


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
    assert "Your own data" in text
    for option in ("--bag", "--checkpoint", "--topic", "--out", "--frames"):
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
