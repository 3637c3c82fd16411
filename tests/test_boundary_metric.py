"""`svsgan eval --metrics boundary`: contrast across the seams of touching same-class objects, generated
over real, by hand on tiny frames, then through both eval modes (the generator gets the ids too)."""
import json

import cv2
import numpy as np
import pytest
import torch

from svsgan_core.cli import main
from svsgan_core.data.labels import get_label_space
from svsgan_core.metrics import DEFAULT_METRICS, METRICS
from svsgan_core.metrics.boundary import BoundaryContrast, seam_contrast
from svsgan_core.metrics.evaluate import EvalOptions, Evaluator

CITYSCAPES = get_label_space("cityscapes")
CAR, ROAD = CITYSCAPES.index("car"), CITYSCAPES.index("road")
H, W = 16, 24


def parked_cars() -> tuple[np.ndarray, np.ndarray]:
    """Two cars (ids 1, 2) touching along a vertical seam of 8 rows at column 12, on road (id 0)."""
    labels = np.full((H, W), ROAD, np.uint8)
    labels[4:12, 4:20] = CAR
    ids = np.zeros((H, W), np.int32)
    ids[4:12, 4:12], ids[4:12, 12:20] = 1, 2
    return labels, ids


def paint(labels, ids, colours) -> np.ndarray:
    """Grey frame: the road 100, each car its own grey level."""
    frame = np.full((H, W), 100, np.uint8)
    for i, value in colours.items():
        frame[ids == i] = value
    return np.repeat(frame[..., None], 3, -1)


def test_seam_contrast_by_hand():
    labels, ids = parked_cars()
    real = paint(labels, ids, {1: 60, 2: 200})  # the camera sees two cars
    blob = paint(labels, ids, {1: 130, 2: 130})  # a generator that paints one blob
    half = paint(labels, ids, {1: 95, 2: 165})  # one that draws the seam at half the contrast
    length, (c_real, c_blob, c_half) = seam_contrast([real, blob, half], labels, ids)
    assert length.tolist() == [8]  # one pair of cars, eight pixel pairs across the seam
    assert c_real.tolist() == [140.0] and c_blob.tolist() == [0.0] and c_half.tolist() == [70.0]
    # the road around them is another class: no seam there, however different it looks
    assert seam_contrast([real], labels, np.zeros_like(ids))[0].size == 0  # one id for everything: no pair
    assert seam_contrast([real], labels, labels)[0].size == 0  # the datasets' fallback (ids = labels): no pair


def test_short_contacts_and_ignored_pixels_are_left_out():
    labels, ids = parked_cars()
    real = paint(labels, ids, {1: 60, 2: 200})
    corner, corner_labels = ids.copy(), labels.copy()
    corner[4:12, 12:20], corner_labels[4:12, 12:20] = 0, ROAD
    corner[11, 12], corner_labels[11, 12] = 2, CAR  # car 2 is now one pixel touching car 1: a 1-pixel seam
    assert seam_contrast([real], corner_labels, corner)[0].size == 0
    assert seam_contrast([real], corner_labels, corner, min_seam=1)[0].tolist() == [1]
    ignored = np.where(labels == CAR, 255, labels).astype(np.uint8)
    assert seam_contrast([real], ignored, ids, ignore_index=255)[0].size == 0


def test_boundary_is_generated_over_real_averaged_over_pairs_and_frames():
    labels, ids = parked_cars()
    real = paint(labels, ids, {1: 60, 2: 200})
    acc = BoundaryContrast(ignore_index=255)
    acc.add_sequence(np.stack([paint(labels, ids, {1: 130, 2: 130}), real]), np.stack([real, real]),
                     np.stack([labels, labels]), np.stack([ids, ids]))
    out = acc.results()
    assert out == {"boundary": pytest.approx(0.5), "boundary_fake": pytest.approx(70.0),
                   "boundary_real": pytest.approx(140.0), "boundary_pairs": 2}
    assert BoundaryContrast().results() == {}


def test_evaluator_scores_boundary_only_with_instances_and_says_why_not():
    assert "boundary" in METRICS and "boundary" not in DEFAULT_METRICS
    labels, ids = parked_cars()
    real = paint(labels, ids, {1: 60, 2: 200})[None]
    fake = paint(labels, ids, {1: 100, 2: 170})[None]
    ev = Evaluator(EvalOptions(metrics=["boundary"]), log=lambda _: None)
    ev.add_sequence(fake, real, labels[None], instances=ids[None])
    assert ev.results()["boundary"] == pytest.approx(0.5)
    assert "1 touching same-class pairs in 1 frames" in ev.notes["boundary"]
    bare = Evaluator(EvalOptions(metrics=["boundary"]), log=lambda _: None)
    bare.add_sequence(fake, real, labels[None])
    assert "boundary" not in bare.results() and "instance maps" in bare.skipped["boundary"]


def _video(folder, frames, cvt=True):
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if cvt else frame)


def test_folder_mode_reads_instance_videos(tmp_path):
    labels, ids = parked_cars()
    _video(tmp_path / "real" / "a", [paint(labels, ids, {1: 60, 2: 200})] * 2)
    _video(tmp_path / "fake" / "a", [paint(labels, ids, {1: 130, 2: 130})] * 2)
    _video(tmp_path / "labels" / "a", [labels] * 2, cvt=False)
    _video(tmp_path / "inst" / "a", [ids.astype(np.uint16)] * 2, cvt=False)
    assert main(["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"), "--labels",
                 str(tmp_path / "labels"), "--instances", str(tmp_path / "inst"), "--metrics", "boundary",
                 "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["metrics"]["boundary"] == 0.0 and doc["metrics"]["boundary_pairs"] == 2
    assert "Boundary contrast" in (tmp_path / "out" / "metrics.md").read_text()
    assert main(["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                 "--instances", str(tmp_path / "inst"), "--metrics", "boundary", "--out", str(tmp_path / "o2")]) == 1


def test_checkpoint_mode_reads_the_datas_instances_feeds_them_to_the_generator_and_scores_them(
        tmp_path, monkeypatch, capsys, one_thread):
    from svsgan_core.data.synthetic import generate_sequence
    from svsgan_core.models.config import preset
    from svsgan_core.models.generator import SVSGenerator
    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.runtime.synthesizer import VideoSynthesizer

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SVSGenerator(preset("tiny")))  # 64x128
    assert main(["make-synthetic", str(tmp_path / "data"), "--sequences", "1", "--frames", "3", "--size", "128x64",
                 "--touching", "--no-flow", "--supersample", "1", "--no-progress"]) == 0
    got = []
    step = VideoSynthesizer.step

    def recording_step(self, labels, stream=None, instances=None):
        got.append(instances)
        return step(self, labels, stream, instances=instances)

    monkeypatch.setattr(VideoSynthesizer, "step", recording_step)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(tmp_path / "data"), "--sequence-length", "3",
                 "--metrics", "boundary", "--baseline", "class-mean", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    assert "instance maps: all 3 frames" in capsys.readouterr().out
    seed = json.loads(json.dumps(__import__("yaml").safe_load((tmp_path / "data" / "dataset.yaml").read_text())))
    _, _, instances = generate_sequence(seed["sequences"][0]["seed"], 3, 64, 128, return_instances=True, touching=True)
    assert len(got) == 3 and all(g is not None for g in got)
    for g, expected in zip(got, instances):
        np.testing.assert_array_equal(g, expected)
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["metrics"]["boundary_pairs"] > 0 and doc["metrics"]["boundary_real"] > 5
    assert doc["baselines"]["class-mean"]["metrics"]["boundary"] == 0.0  # one colour per class: no seam at all
