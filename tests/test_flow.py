"""Pseudo-ground-truth flow: DIS in the backward convention, the cache files and `svsgan prepare-flow`."""
import numpy as np
import pytest
import torch

from svsgan_core.cli import main as svsgan
from svsgan_core.data.flow import DisFlow, load_flow, prepare_flow, resize_flow, save_flow
from svsgan_core.data.layouts import find_sequences, write_dataset_info, write_frame
from svsgan_core.data.synthetic import generate_sequence
from svsgan_core.errors import InputError
from svsgan_core.models.flow import warp


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    return (cv2.GaussianBlur(noise, (0, 0), 2.0) * 255 * 3 - 255).clip(0, 255).astype(np.uint8)


def test_dis_flow_is_backward_in_pixels():
    """Frame i is frame i-1 moved 3 px right, so frame i at x shows frame i-1 at x - 3: flow = (-3, 0)."""
    previous = _textured(64, 96)
    current = np.roll(previous, 3, axis=1)
    flow, conf = DisFlow("medium")(previous, current)
    core = (slice(8, -8), slice(8, -8))
    assert flow.shape == (64, 96, 2) and conf.shape == (64, 96)
    np.testing.assert_allclose(np.median(flow[core].reshape(-1, 2), axis=0), [-3.0, 0.0], atol=0.25)
    assert conf[core].mean() > 0.8 and 0.0 <= conf.min() and conf.max() <= 1.0
    assert conf[:, :2].mean() < 0.5  # pixels whose source lies left of the frame are not trusted


def test_dis_flow_warps_previous_frame_closer_to_current():
    """The convention end to end: grid_sample (align_corners=True) of frame i-1 at x + flow approximates frame i."""
    images, _ = generate_sequence(7, 4, 64, 128)
    estimator = DisFlow("medium")
    frames = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    for i in range(1, len(images)):
        flow, conf = estimator(images[i - 1], images[i])
        f = torch.from_numpy(flow).permute(2, 0, 1)[None]
        warped = warp(frames[i - 1: i], f)[0]
        trusted = torch.from_numpy(conf > 0.5).expand_as(warped)
        assert (warped - frames[i])[trusted].abs().mean() < 0.8 * (frames[i - 1] - frames[i])[trusted].abs().mean()


def test_save_load_round_trip_in_float16(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 5, (6, 8, 2)).astype(np.float32)
    conf = rng.random((6, 8)).astype(np.float32)
    path = tmp_path / "sub" / "000001.npz"
    save_flow(path, flow, conf)
    loaded, loaded_conf = load_flow(path)
    assert loaded.dtype == np.float32 and loaded.shape == (6, 8, 2)
    np.testing.assert_allclose(loaded, flow, atol=0.01)
    np.testing.assert_allclose(loaded_conf, conf, atol=1e-3)
    with np.load(path) as data:
        assert data["flow"].dtype == np.float16 and data["conf"].dtype == np.float16
    assert not list(tmp_path.rglob("*.tmp"))


def test_flow_without_conf_is_fully_trusted(tmp_path):
    path = tmp_path / "own.npz"
    np.savez(path, flow=np.ones((4, 5, 2), np.float16))
    flow, conf = load_flow(path)
    assert flow.shape == (4, 5, 2) and np.all(conf == 1)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"not a zip file at all", "cannot read flow file"),
    ("wrong-shape", "expected flow"),
])
def test_unusable_flow_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "000003.npz"
    if content == "wrong-shape":
        np.savez(path, flow=np.zeros((4, 5, 3), np.float16), conf=np.zeros((4, 5), np.float16))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        load_flow(path)
    assert str(path) in str(err.value)


def test_resize_scales_vectors_with_the_grid():
    flow = np.zeros((10, 20, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    resized, conf = resize_flow(flow, np.ones((10, 20), np.float32), (40, 5))
    assert resized.shape == (5, 40, 2) and conf.shape == (5, 40)
    np.testing.assert_allclose(resized[..., 0], 4.0)
    np.testing.assert_allclose(resized[..., 1], -0.5)


@pytest.fixture()
def folder_dataset(tmp_path):
    images, labels = generate_sequence(3, 4, 32, 64)
    for name in ("a", "b"):
        for i in range(len(images)):
            write_frame(tmp_path, name, i, images[i], labels[i])
    write_dataset_info(tmp_path, "cityscapes")
    return tmp_path


def test_prepare_flow_writes_every_frame_but_the_first_and_resumes(folder_dataset):
    sequences = find_sequences("folder", folder_dataset)
    assert prepare_flow(sequences, progress=False) == {"written": 6, "skipped": 0}
    for seq in ("a", "b"):
        names = sorted(p.name for p in (folder_dataset / seq / "flow").iterdir())
        assert names == ["000001.npz", "000002.npz", "000003.npz"]
    first = folder_dataset / "a" / "flow" / "000001.npz"
    stamp = first.stat().st_mtime_ns
    assert prepare_flow(sequences, progress=False) == {"written": 0, "skipped": 6}
    assert first.stat().st_mtime_ns == stamp
    assert prepare_flow(sequences, overwrite=True, max_width=32, preset="ultrafast", progress=False)["written"] == 6
    flow, conf = load_flow(first)
    assert flow.shape == (16, 32, 2) and conf.shape == (16, 32)


def test_prepare_flow_command(folder_dataset, capsys):
    assert svsgan(["prepare-flow", str(folder_dataset), "--preset", "ultrafast"]) == 0
    assert "wrote 6 flow files" in capsys.readouterr().out
    assert svsgan(["prepare-flow", str(folder_dataset)]) == 0
    assert "kept 6 existing" in capsys.readouterr().out
    assert svsgan(["prepare-flow", str(folder_dataset / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
