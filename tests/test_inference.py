"""VideoSynthesizer: the streaming contract, checkpoints, long streams."""
import dataclasses

import numpy as np
import pytest
import torch

from svsgan_core.runtime.checkpoint import load_generator, save_checkpoint
from svsgan_core.models.config import preset
from svsgan_core.errors import CheckpointError, InputError
from svsgan_core.runtime.synthesizer import VideoSynthesizer
from svsgan_core.models import SVSGenerator
from rss import linux_only, rss_kb, second_half_slope_kb


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "ckpt", SVSGenerator(preset("tiny")), meta={"note": "random"})


def labels(seed, h=64, w=128):
    return np.random.default_rng(seed).integers(0, 19, (h, w)).astype(np.uint8)


def test_stream_of_any_input_size_returns_frames_of_that_size(checkpoint):
    synth = VideoSynthesizer.from_checkpoint(checkpoint)
    synth.reset()
    for i in range(3):
        out = synth.step(labels(i, 50, 90))
        assert out.shape == (50, 90, 3) and out.dtype == np.uint8


def test_reference_image_is_the_first_frame_and_conditions_the_next(checkpoint):
    synth = VideoSynthesizer.from_checkpoint(checkpoint)
    ref = np.random.default_rng(0).integers(0, 256, (64, 128, 3)).astype(np.uint8)
    synth.reset(reference_image=ref)
    assert np.array_equal(synth.step(labels(0)), ref)
    with_ref = synth.step(labels(1))
    synth.reset()
    synth.step(labels(0))
    without_ref = synth.step(labels(1))
    assert not np.array_equal(with_ref, without_ref)


def test_reset_restarts_the_sequence(checkpoint):
    synth = VideoSynthesizer.from_checkpoint(checkpoint)
    synth.reset()
    first = synth.step(labels(0))
    synth.step(labels(1))
    synth.reset()
    assert np.array_equal(synth.step(labels(0)), first)


def test_checkpoint_round_trip_gives_identical_outputs(checkpoint):
    a, b = VideoSynthesizer.from_checkpoint(checkpoint), VideoSynthesizer.from_checkpoint(checkpoint)
    for synth in (a, b):
        synth.reset()
    for i in range(4):
        assert np.array_equal(a.step(labels(i)), b.step(labels(i)))


def test_saved_weights_equal_the_trained_generator(tmp_path):
    torch.manual_seed(1)
    g = SVSGenerator(preset("tiny")).eval()
    save_checkpoint(tmp_path / "c", g)
    g2 = load_generator(tmp_path / "c").eval()
    lab = torch.randint(0, 19, (1, 64, 128))
    with torch.no_grad():
        assert torch.equal(g(lab).image, g2(lab).image)


def test_truncated_weights_are_refused_with_a_clear_error(checkpoint):
    f = checkpoint / "generator.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        VideoSynthesizer.from_checkpoint(checkpoint)


def test_config_that_does_not_match_the_weights_is_refused(checkpoint):
    cfg = checkpoint / "config.yaml"
    cfg.write_text(cfg.read_text().replace("- 32\n", "- 48\n", 1))
    with pytest.raises(CheckpointError, match="do not match the config"):
        VideoSynthesizer.from_checkpoint(checkpoint)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        VideoSynthesizer.from_checkpoint(tmp_path / "nope")


def test_a_training_run_folder_loads_its_latest_checkpoint(checkpoint, tmp_path):
    """`--checkpoint runs/<run>` (docs/datasets.md) in every entry point: they all load through checkpoint_dir."""
    run = tmp_path / "runs" / "city"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint.rename(run / "checkpoints" / "latest")
    torch.manual_seed(5)
    save_checkpoint(run / "checkpoints" / "step-0000010", SVSGenerator(preset("tiny")))  # older weights beside it
    from_run = VideoSynthesizer.from_checkpoint(run, backend="torch")
    direct = VideoSynthesizer.from_checkpoint(run / "checkpoints" / "latest", backend="torch")
    for synth in (from_run, direct):
        synth.reset()
    assert np.array_equal(from_run.step(labels(0)), direct.step(labels(0)))
    (run / "checkpoints" / "latest").rename(run / "checkpoints" / "step-0000020")
    with pytest.raises(CheckpointError, match=r"training run without checkpoints/latest.*step-0000010, step-0000020"):
        VideoSynthesizer.from_checkpoint(run)


def test_bad_label_maps_raise_clear_errors(checkpoint):
    synth = VideoSynthesizer.from_checkpoint(checkpoint)
    with pytest.raises(InputError, match="outside the model's label space"):
        synth.step(np.full((64, 128), 40, np.uint8))
    with pytest.raises(InputError, match="integer class ids"):
        synth.step(np.zeros((64, 128), np.float32))
    with pytest.raises(InputError, match="HxW"):
        synth.step(np.zeros((64, 128, 3), np.uint8))
    with pytest.raises(InputError, match="empty"):
        synth.step(np.zeros((0, 5), np.uint8))
    ok = np.full((64, 128), 255, np.uint8)  # the ignore label is allowed
    assert synth.step(ok).shape == (64, 128, 3)


def test_batched_cameras_equal_one_camera_at_a_time(checkpoint):
    synth = VideoSynthesizer.from_checkpoint(checkpoint)
    cams = [synth.stream() for _ in range(3)]
    solo = [synth.stream() for _ in range(3)]
    for t in range(4):
        maps = [labels(10 * c + t) for c in range(3)]
        batched = synth.step_batch(maps, cams)
        single = [synth.step(m, s) for m, s in zip(maps, solo)]
        for x, y in zip(batched, single):
            assert np.abs(x.astype(int) - y.astype(int)).max() <= 1


@linux_only
def test_two_thousand_frame_stream_stays_finite_with_flat_memory(one_thread):
    torch.manual_seed(0)
    # the tiny architecture at a quarter of its pixels: 2,000 autoregressive steps in CI time
    synth = VideoSynthesizer(SVSGenerator(dataclasses.replace(preset("tiny"), height=32, width=64)))
    synth.reset()
    lab = labels(0, 32, 64)
    rss = []
    for _ in range(2000):
        lab = np.roll(lab, 1, axis=1)
        out = synth.step(lab)
        rss.append(rss_kb())
    assert torch.isfinite(synth._default.prev_image).all()
    assert out.std() > 0  # still an image, not collapsed to NaN-turned-constant
    # keeping one frame's fp32 state (3x32x64x4 B = 24 KB) per step grows ~30 KB/frame; allocator
    # steps of a few MB over the 1,000-frame fit stay under 5 KB/frame
    state_kb = 3 * 32 * 64 * 4 / 1024
    assert second_half_slope_kb(rss) < state_kb / 3, rss[1000::100]
