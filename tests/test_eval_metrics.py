"""svsgan eval's learning metrics: L1/PSNR per frame, the class-mean baseline, --json, the carry probe."""
import json

import cv2
import numpy as np
import pytest
import torch

from svsgan_core.cli import main
from svsgan_core.metrics.carry import CarryProbe
from svsgan_core.metrics.evaluate import EvalOptions, Evaluator
from svsgan_core.metrics.pixels import ClassMeanBaseline, l1_per_frame, psnr_per_frame
from svsgan_core.models.generator import GeneratorOutput


def test_l1_and_psnr_by_hand():
    real = np.zeros((2, 4, 4, 3), np.uint8)
    fake = real.copy()
    fake[0] = 51  # 0.2 everywhere
    np.testing.assert_allclose(l1_per_frame(fake, real), [0.2, 0.0], atol=1e-6)
    psnr = psnr_per_frame(fake, real)
    assert psnr[0] == pytest.approx(10 * np.log10(1 / 0.04), abs=1e-3) and psnr[1] == 100.0


def test_class_mean_baseline_paints_class_means_and_the_overall_mean_for_unseen_classes():
    images = np.zeros((1, 2, 2, 3), np.uint8)
    images[0, 0] = (10, 20, 30)
    images[0, 1, 0] = (100, 100, 100)
    images[0, 1, 1] = (200, 200, 200)
    labels = np.array([[[0, 0], [1, 1]]], np.uint8)
    baseline = ClassMeanBaseline()
    baseline.fit(images, labels)
    painted = baseline.paint(np.array([[[1, 0], [7, 7]]]))
    np.testing.assert_array_equal(painted[0, 0, 0], (150, 150, 150))
    np.testing.assert_array_equal(painted[0, 0, 1], (10, 20, 30))
    np.testing.assert_array_equal(painted[0, 1, 0], np.round(images.reshape(-1, 3).mean(0)))


def test_per_frame_numbers_are_means_over_sequences_and_line_up_by_frame_number():
    ev = Evaluator(EvalOptions(metrics=["l1", "psnr"]), log=lambda _: None)
    real = np.zeros((3, 4, 4, 3), np.uint8)
    for offset in (0, 51):  # two sequences: errors (0, 0.2, 0.4) and (0.2, 0.4, 0.6)
        fake = np.stack([np.full((4, 4, 3), offset + 51 * t, np.uint8) for t in range(3)])
        ev.add_sequence(fake, real, first_frame=2)
    out = ev.results()
    assert out["per_frame"]["frame"] == [2, 3, 4]
    np.testing.assert_allclose(out["per_frame"]["l1"], [0.1, 0.3, 0.5], atol=1e-6)
    assert out["l1"] == pytest.approx(0.3, abs=1e-6) and out["l1_from_frame_2"] == pytest.approx(0.3, abs=1e-6)
    assert len(out["per_frame"]["psnr"]) == 3 and out["per_frame"]["psnr"][0] > out["per_frame"]["psnr"][2]


class _Carrier(torch.nn.Module):
    """A stand-in generator: output = share * WI + (1 - share) * grey, visible everywhere."""

    def __init__(self, share: float):
        super().__init__()
        self.share = share

    def forward(self, labels, prev_labels, prev_image):
        b, _, h, w = prev_image.shape
        occlusion = prev_image.new_zeros(b, 1, h, w)
        occlusion[..., : h // 4, :] = 1.0  # the top quarter is "occluded": not counted
        image = self.share * prev_image + occlusion * 0.7 * prev_image.flip(0)
        return GeneratorOutput(image, prev_image.new_zeros(b, 2, h, w), occlusion, prev_image)


@pytest.mark.parametrize("share", [1.0, 0.25, 0.0])
def test_carry_probe_measures_how_much_of_the_previous_frame_reaches_visible_pixels(share):
    rng = np.random.default_rng(0)
    real = rng.integers(40, 200, (3, 16, 16, 3), dtype=np.uint8)
    probe = CarryProbe(_Carrier(share))
    probe.add_sequence(real, np.zeros((3, 16, 16), np.int64))
    out = probe.results()
    assert out["carry"] == pytest.approx(share, abs=1e-4)
    assert out["carry_colour_shift"] == pytest.approx(share, abs=1e-4)
    assert out["carry_visible"] == pytest.approx(0.75) and out["carry_occlusion"] == pytest.approx(0.25)


def _write_video(folder, frames, labels=False):
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:04d}.png"), frame if labels else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def test_folder_mode_scores_the_class_mean_baseline_beside_the_model_into_json(tmp_path):
    from svsgan_core.data.synthetic import generate_sequence

    images, labels = generate_sequence(0, 3, 32, 64, appearance="random")
    _write_video(tmp_path / "real" / "a", images)
    _write_video(tmp_path / "fake" / "a", images)  # a perfect "model"
    _write_video(tmp_path / "labels" / "a", labels, labels=True)
    target = tmp_path / "doc" / "eval.json"
    assert main(["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--labels",
                 str(tmp_path / "labels"), "--metrics", "l1,psnr", "--baseline", "class-mean", "--json", str(target),
                 "--out", str(tmp_path / "out")]) == 0
    doc = json.loads(target.read_text())
    assert doc["metrics"]["l1"] == 0 and doc["metrics"]["psnr"] == 100.0
    fitted = ClassMeanBaseline()
    fitted.fit(images, labels)
    expected = l1_per_frame(fitted.paint(labels), images)
    base = doc["baselines"]["class-mean"]
    assert base["metrics"]["l1"] == pytest.approx(expected.mean(), abs=1e-6) and base["metrics"]["l1"] > 0.02
    np.testing.assert_allclose(base["per_frame"]["l1"], expected, atol=1e-6)
    assert "class-mean" in (tmp_path / "out" / "metrics.md").read_text()


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.models.config import preset
    from svsgan_core.data.layouts import write_dataset_info, write_frame
    from svsgan_core.data.synthetic import generate_sequence
    from svsgan_core.models.generator import SVSGenerator

    root = tmp_path_factory.mktemp("tiny_eval")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "ckpt", SVSGenerator(preset("tiny")))
    for name, seeds in (("data", (0, 1)), ("other", (5,))):
        write_dataset_info(root / name, "cityscapes")
        for k in seeds:
            images, labels = generate_sequence(k, 4, 64, 128, appearance="random")
            for t in range(4):
                write_frame(root / name, f"seq{k}", t, images[t], labels[t])
    return root, ckpt


@pytest.mark.parametrize("first_frame", ["real", "generated"])
def test_checkpoint_mode_baseline_carry_and_per_frame_json(tiny_setup, first_frame, one_thread):
    root, ckpt = tiny_setup
    target = root / f"eval-{first_frame}.json"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(root / "data"), "--sequence-length", "4",
                 "--first-frame", first_frame, "--metrics", "l1,psnr,carry", "--baseline", "class-mean",
                 "--baseline-data", str(root / "other"), "--json", str(target), "--device", "cpu",
                 "--out", str(root / f"out-{first_frame}")]) == 0
    doc = json.loads(target.read_text())
    numbers = [2, 3, 4] if first_frame == "real" else [1, 2, 3, 4]
    assert doc["per_frame"]["frame"] == numbers and len(doc["per_frame"]["l1"]) == len(numbers)
    assert doc["baselines"]["class-mean"]["per_frame"]["frame"] == numbers
    assert 0 < doc["metrics"]["l1"] < 1 and 0 < doc["metrics"]["l1_from_frame_2"] < 1
    assert np.isfinite(doc["metrics"]["carry"]) and doc["metrics"]["carry"] >= 0
    assert "carry" not in doc["baselines"]["class-mean"]["metrics"]
    assert doc["baseline_data"] == str(root / "other")
    # the baseline is the class means of the other data painted on the evaluation labels (64x128 is
    # the tiny model's resolution, so nothing is resized)
    from svsgan_core.data.synthetic import generate_sequence

    fitted = ClassMeanBaseline()
    fitted.fit(*generate_sequence(5, 4, 64, 128, appearance="random"))
    skip = numbers[0] - 1
    expected = np.mean([l1_per_frame(fitted.paint(lab[skip:]), im[skip:]) for im, lab in
                        (generate_sequence(k, 4, 64, 128, appearance="random") for k in (0, 1))], 0)
    np.testing.assert_allclose(doc["baselines"]["class-mean"]["per_frame"]["l1"], expected, atol=2e-3)


def test_sharpness_is_one_on_the_real_frame_and_falls_with_blur():
    from svsgan_core.metrics.pixels import sharpness_per_frame

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (3, 32, 64, 3), dtype=np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), s) for f, s in zip(real, (0.6, 1.0, 2.0))])
    np.testing.assert_allclose(sharpness_per_frame(real, real), 1.0)
    sharp = sharpness_per_frame(blurred, real)
    assert 0 < sharp[2] < sharp[1] < sharp[0] < 0.5  # more blur, less detail
    flat = np.full_like(real, 128)
    assert sharpness_per_frame(flat, real).max() == 0.0


def test_checkpoint_mode_writes_sharpness_per_frame_and_a_contact_sheet(tiny_setup, one_thread):
    root, ckpt = tiny_setup
    out = root / "out-sheet"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(root / "data"), "--sequence-length", "4",
                 "--metrics", "l1,sharpness", "--baseline", "class-mean", "--contact-frames", "2,4,9",
                 "--sequences", "seq1", "--json", str(out / "m.json"), "--out", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "m.json").read_text())
    assert doc["sequences"] == 1 and doc["per_frame"]["frame"] == [2, 3, 4]
    per_frame = doc["per_frame"]["sharpness"]
    assert len(per_frame) == 3 and doc["metrics"]["sharpness_min"] == pytest.approx(min(per_frame))
    assert doc["metrics"]["sharpness"] == pytest.approx(np.mean(per_frame))
    assert "sharpness" in doc["baselines"]["class-mean"]["metrics"]
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    # rows labels | real | generated | class-mean of frames 2 and 4 (9 is past the end), 128 px wide
    # frames shown at 256 px; an 18 px title band
    assert sheet.shape[1] == 2 * 256 and sheet.shape[0] == 18 + 4 * 128


def test_baseline_data_needs_a_baseline(tiny_setup, capsys):
    root, ckpt = tiny_setup
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(root / "data"), "--metrics", "l1",
                 "--baseline-data", str(root / "other"), "--out", str(root / "bad")]) == 1
    assert "--baseline" in capsys.readouterr().err
