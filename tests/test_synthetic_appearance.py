"""`--appearance random`: the layout of the default sequences, repainted with a per-sequence look."""
import cv2
import numpy as np
import pytest
import torch
import yaml

from svsgan_core.cli import main as svsgan
from svsgan_core.data.layouts import DATASET_FILE
from svsgan_core.data.synthetic import BUILDING, ROAD, SKY, VEGETATION, generate_sequence
from svsgan_core.errors import InputError
from svsgan_core.models.flow import warp

H, W = 48, 96
SEEDS = (0, 1, 2, 3)
CLASSES = (ROAD, BUILDING, VEGETATION, SKY)


@pytest.fixture(scope="module")
def rendered():
    return {(app, seed): generate_sequence(seed, 4, H, W, return_flow=True, appearance=app)
            for app in ("default", "random") for seed in SEEDS}


def test_random_appearance_keeps_labels_and_flow_but_not_the_colours(rendered):
    for seed in SEEDS:
        default, random = rendered["default", seed], rendered["random", seed]
        for a, b in zip(default[1:], random[1:]):  # labels, flow, confidence
            np.testing.assert_array_equal(a, b)
        assert np.abs(default[0].astype(int) - random[0]).mean() > 10
    again = generate_sequence(SEEDS[0], 4, H, W, return_flow=True, appearance="random")
    np.testing.assert_array_equal(again[0], rendered["random", SEEDS[0]][0])


@pytest.fixture(scope="module")
def first_frames():
    return {app: [generate_sequence(seed, 1, H, W, appearance=app) for seed in range(6)]
            for app in ("default", "random")}


def _leave_one_out_class_mean_l1(sequences) -> float:
    """L1 (in [0, 1]) of painting each sequence with the per-class mean colour of the others."""
    errors = []
    for i, (images, labels) in enumerate(sequences):
        sums, counts = np.zeros((256, 3)), np.zeros(256)
        for j, (other, other_labels) in enumerate(sequences):
            if j != i:
                np.add.at(sums, other_labels.ravel(), other.reshape(-1, 3))
                np.add.at(counts, other_labels.ravel(), 1)
        means = sums / np.maximum(counts, 1)[:, None]
        errors.append(np.abs(means[labels] - images).mean() / 255)
    return float(np.mean(errors))


def test_class_colours_vary_across_sequences_far_more_in_random_mode(first_frames):
    """By default a class looks alike in every sequence (road grey, vegetation green), so its colour
    is predictable from the label; in random mode the same class differs from sequence to sequence and
    painting it with the other sequences' class mean misses by far more."""
    spread = {}
    for app, sequences in first_frames.items():
        per_class = {c: [images[labels == c].mean(0) for images, labels in sequences if (labels == c).sum() > 50]
                     for c in CLASSES}
        spread[app] = {c: np.linalg.norm(np.std(v, 0)) for c, v in per_class.items() if len(v) >= 4}
    assert set(spread["random"]) == set(CLASSES)
    for c in CLASSES:
        assert spread["random"][c] > 1.25 * spread["default"][c], (c, spread)
    default, random = (_leave_one_out_class_mean_l1(first_frames[a]) for a in ("default", "random"))
    assert random > 1.5 * default, (default, random)


def test_random_textures_move_with_the_scene(rendered):
    """The repainted texture is anchored to the surfaces: warping frame i-1 by the exact flow still
    explains frame i far better than frame i-1 as it stands."""
    warped_err = still_err = 0.0
    for seed in SEEDS:
        images, labels, flow, conf = rendered["random", seed]
        frames = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        f = torch.from_numpy(flow).permute(0, 3, 1, 2)
        warped = warp(frames[:-1], f[1:])
        region = torch.from_numpy((conf[1:] > 0.5) & (np.linalg.norm(flow[1:], axis=-1) > 0.3))[:, None]
        region = region.expand_as(warped)
        warped_err += (warped - frames[1:]).abs()[region].sum().item()
        still_err += (frames[:-1] - frames[1:]).abs()[region].sum().item()
    assert warped_err < 0.6 * still_err


def test_unknown_appearance_is_an_input_error():
    with pytest.raises(InputError, match="appearance"):
        generate_sequence(0, 2, H, W, appearance="psychedelic")


def test_make_synthetic_appearance_flag(tmp_path, capsys):
    root = tmp_path / "random"
    args = ["make-synthetic", str(root), "--sequences", "1", "--frames", "2", "--size", "64x32", "--supersample", "1"]
    assert svsgan(args + ["--appearance", "random"]) == 0
    info = yaml.safe_load((root / DATASET_FILE).read_text())
    assert info["appearance"] == "random"
    image = cv2.imread(str(next((root / "seq_0000").rglob("*.png"))))
    assert image is not None
    with pytest.raises(SystemExit):
        svsgan(args + ["--appearance", "nope", "--overwrite"])
