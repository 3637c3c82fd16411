"""ONNX export of the per-frame step: matches PyTorch, one graph for both modes, streams like VideoSynthesizer."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from svsgan_core.cli import main  # noqa: E402
from svsgan_core.models.config import preset  # noqa: E402
from svsgan_core.errors import InputError  # noqa: E402
from svsgan_core.runtime.export import (  # noqa: E402
    compare_with_pytorch,
    export_onnx,
    folded_copy,
    read_onnx_config,
    trtexec_command,
)
from svsgan_core.runtime.synthesizer import OnnxSynthesizer, VideoSynthesizer  # noqa: E402
from svsgan_core.models import SVSGenerator  # noqa: E402
from rss import linux_only, rss_kb, second_half_slope_kb  # noqa: E402


def generator(seed=0):
    torch.manual_seed(seed)
    g = SVSGenerator(preset("tiny"))
    # non-zero flow (its head starts at zero), so warping really moves pixels in the comparison
    torch.nn.init.normal_(g.flow_net.flow_head.weight, std=0.05)
    torch.nn.init.normal_(g.flow_net.flow_head.bias, std=1.0)
    return g


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    g = generator()
    return g, export_onnx(g, tmp_path_factory.mktemp("onnx") / "step.onnx")


def labels(seed, h=64, w=128):
    base = np.random.default_rng(seed).integers(0, 19, (-(-h // 8), -(-w // 8))).astype(np.uint8)
    return np.ascontiguousarray(np.kron(base, np.ones((8, 8), np.uint8))[:h, :w])


def test_onnx_matches_pytorch_within_1e3_over_a_30_frame_stream(exported):
    g, path = exported
    diffs = compare_with_pytorch(g, path, frames=30)
    assert len(diffs) == 30 and max(diffs) < 1e-3, diffs


def test_dynamic_batch_of_cameras_matches_pytorch(exported):
    g, path = exported
    assert max(compare_with_pytorch(g, path, frames=3, batch=3, seed=1)) < 1e-3


def test_first_frame_flag_is_the_first_frame_mode_per_camera(exported):
    """One batch may mix a camera that starts (flag 1) with one that continues (flag 0)."""
    assert_mixed_batch_matches(*exported)


def assert_mixed_batch_matches(g, path):
    """Camera 0 starts (flag 1), camera 1 continues: each matches its own PyTorch forward (a class
    palette's anchor frame is not the previous one, so the graph must take the anchor it is given)."""
    gen = folded_copy(g)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lab = torch.from_numpy(np.stack([labels(1), labels(2)]).astype(np.int64))
    prev_lab = torch.from_numpy(np.stack([labels(3), labels(4)]).astype(np.int64))
    prev_img = torch.rand(2, 3, 64, 128) * 2 - 1
    feeds = {"prev_image": prev_img.numpy(), "prev_labels": prev_lab.numpy(), "labels": lab.numpy(),
             "first_frame": np.array([1, 0], np.float32)}
    anchor = {}
    if g.cfg.class_palette:
        anchor = {"anchor_image": torch.rand(2, 3, 64, 128) * 2 - 1,
                  "anchor_labels": torch.from_numpy(np.stack([labels(5), labels(6)]).astype(np.int64))}
        feeds.update({k: v.numpy() for k, v in anchor.items()})
    out = sess.run(["image"], feeds)[0]
    with torch.no_grad():
        first = gen(lab[:1]).image
        cont = gen(lab[1:], prev_lab[1:], prev_img[1:], **{k: v[1:] for k, v in anchor.items()}).image
    assert np.abs(out[:1] - first.numpy()).max() < 1e-4
    assert np.abs(out[1:] - cont.numpy()).max() < 1e-4


def palette_model():
    """A tiny local class palette model whose colours and decoder residual are not zero (as trained)."""
    import dataclasses

    torch.manual_seed(0)
    g = SVSGenerator(dataclasses.replace(preset("tiny"), class_colour=True, class_palette=True, palette_cells=16,
                                         occlusion_composite=False)).eval()
    torch.nn.init.normal_(g.class_colour.weight, std=1.0)
    torch.nn.init.normal_(g.to_rgb[1].weight, std=0.05)
    return g


def test_a_class_palette_model_exports_with_its_anchor_inputs_and_matches_per_camera(tmp_path):
    """The palette's source frame (the stream's first) is two more graph inputs, after the contract's
    four; a mixed batch matches PyTorch camera by camera, and trtexec gets a shape for each input."""
    g = palette_model()
    path = export_onnx(g, tmp_path / "palette.onnx")
    inputs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()
    assert [i.name for i in inputs] == ["prev_image", "prev_labels", "labels", "first_frame", "anchor_image",
                                        "anchor_labels"]
    assert max(compare_with_pytorch(g, path, frames=4, batch=2, seed=2)) < 1e-3
    assert_mixed_batch_matches(g, path)
    assert "anchor_image:4x3x64x128,anchor_labels:4x64x128" in trtexec_command(path, "g.plan", g.cfg, max_batch=4)



def test_a_class_palette_stream_takes_its_colours_from_its_first_frame(tmp_path):
    """Fed back from I_{i-1} over a long stream, palette colours drift through the model's own outputs;
    a stream anchors them to its first frame (here the reference), in PyTorch and in the graph alike."""
    g = palette_model()
    ref = (np.random.default_rng(0).random((64, 128, 3)) * 255).astype(np.uint8)
    labs = [labels(k % 2) for k in range(5)]  # two layouts in turn, both seen in the reference's
    synth = VideoSynthesizer(g)
    synth.reset(reference_image=ref)
    got = [synth.step(lab) for lab in labs]
    np.testing.assert_array_equal(got[0], ref)
    ids = [torch.from_numpy(lab.astype(np.int64))[None] for lab in labs]
    first = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    anchored = previous = first
    with torch.no_grad():
        for k in range(1, 5):
            anchored_next = g(ids[k], ids[k - 1], anchored, anchor_image=first, anchor_labels=ids[0]).image
            previous = g(ids[k], ids[k - 1], previous).image  # the palette of I_{i-1}, as in training
            want = ((anchored_next.clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()
            assert np.abs(got[k].astype(int) - want).max() <= 1, k
            anchored = anchored_next
    assert (anchored - previous).abs().max().item() > 0.05  # the anchor matters: the previous frame's palette differs
    onnx = OnnxSynthesizer(export_onnx(g, tmp_path / "palette.onnx"))
    onnx.reset(reference_image=ref)
    for k, lab in enumerate(labs):
        assert np.abs(onnx.step(lab).astype(int) - got[k]).max() <= 2, k


def test_a_cached_graph_without_the_inputs_its_model_needs_is_exported_again(tmp_path, monkeypatch, capsys):
    """A graph cached by an older svsgan (a class palette model's before its anchor inputs) must not be
    fed: onnxruntime would refuse the inputs mid-stream. The synthesizer checks the graph's inputs
    against its model's when it loads, and the cache exports the graph again."""
    import dataclasses
    import hashlib

    import onnx

    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.runtime.export import META_KEY, cached_onnx

    monkeypatch.setenv("SVSGAN_CACHE_DIR", str(tmp_path / "cache"))
    cfg = dataclasses.replace(preset("tiny"), class_colour=True, class_palette=True, occlusion_composite=False)
    torch.manual_seed(0)
    g = SVSGenerator(cfg).eval()
    save_checkpoint(tmp_path / "ckpt", g)
    out = cached_onnx(tmp_path / "ckpt")
    stale = onnx.load(str(export_onnx(SVSGenerator(dataclasses.replace(cfg, class_palette=False)), tmp_path / "old.onnx")))
    next(p for p in stale.metadata_props if p.key == META_KEY).value = json.dumps(cfg.to_dict())
    onnx.save(stale, str(out))
    out.with_name(out.name + ".sha256").write_text(hashlib.sha256(out.read_bytes()).hexdigest())
    with pytest.raises(InputError, match="export it again"):
        OnnxSynthesizer(out)
    capsys.readouterr()
    synth = OnnxSynthesizer.from_checkpoint(tmp_path / "ckpt")
    assert "could not be loaded" in capsys.readouterr().err
    synth.reset(reference_image=np.zeros((64, 128, 3), np.uint8))
    for k in range(3):
        assert synth.step(labels(k)).shape == (64, 128, 3)

def test_out_of_range_ids_are_all_zero_like_one_hot(exported):
    g, path = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lab = torch.from_numpy(labels(5).astype(np.int64))[None]
    lab[:, :8] = 255  # the ignore label
    with torch.no_grad():
        ref = folded_copy(g)(lab).image
    out = sess.run(["image"], {"prev_image": np.zeros((1, 3, 64, 128), np.float32), "prev_labels": lab.numpy(),
                               "labels": lab.numpy(), "first_frame": np.ones(1, np.float32)})[0]
    assert np.abs(out - ref.numpy()).max() < 1e-4


def test_onnx_synthesizer_keeps_the_streaming_contract(exported):
    g, path = exported
    onnx_synth = OnnxSynthesizer(path, providers=["CPUExecutionProvider"])
    torch_synth = VideoSynthesizer(folded_copy(g))
    assert onnx_synth.resolution == (64, 128) and onnx_synth.label_space.name == torch_synth.label_space.name
    ref = np.random.default_rng(0).integers(0, 256, (64, 128, 3)).astype(np.uint8)
    for synth in (onnx_synth, torch_synth):
        synth.reset(reference_image=ref)
    lab = labels(0, 50, 90)  # any input size: resized to the model and back
    worst = 0
    for k in range(12):
        a, b = onnx_synth.step(lab), torch_synth.step(lab)
        assert a.shape == (50, 90, 3) and a.dtype == np.uint8
        worst = max(worst, int(np.abs(a.astype(int) - b.astype(int)).max()))
        lab = np.roll(lab, 2, axis=1)
    assert worst <= 2  # free-running: both feed back their own (float-rounding different) frames
    onnx_synth.reset()
    first = onnx_synth.step(labels(7))
    onnx_synth.step(labels(8))
    onnx_synth.reset()
    assert np.array_equal(onnx_synth.step(labels(7)), first)


def test_export_leaves_the_generator_untouched_and_stores_the_config(exported, tmp_path):
    g, path = exported
    assert any(".parametrizations." in k for k in g.state_dict())  # spectral norm still trainable
    with torch.no_grad():
        g.eval()(torch.zeros(1, 64, 128, dtype=torch.long))
    cfg = read_onnx_config(path)
    assert (cfg.height, cfg.width, cfg.num_classes) == (64, 128, 19)
    other = export_onnx(g, tmp_path / "big.onnx", resolution="256x128", dynamic_batch=False)
    cfg = read_onnx_config(other)
    assert (cfg.height, cfg.width) == (128, 256)
    sess = ort.InferenceSession(str(other), providers=["CPUExecutionProvider"])
    assert [i.shape for i in sess.get_inputs()] == [[1, 3, 128, 256], [1, 128, 256], [1, 128, 256], [1]]


def test_bad_export_requests_are_refused(tmp_path):
    g = generator()
    with pytest.raises(InputError, match="opset"):
        export_onnx(g, tmp_path / "x.onnx", opset=13)
    with pytest.raises(InputError, match="divisible"):
        export_onnx(g, tmp_path / "x.onnx", resolution="100x60")
    with pytest.raises(InputError, match="WIDTHxHEIGHT"):
        export_onnx(g, tmp_path / "x.onnx", resolution="big")
    with pytest.raises(InputError, match="no ONNX file"):
        OnnxSynthesizer(tmp_path / "missing.onnx")


def test_svsgan_export_command_writes_a_verified_graph(tmp_path, capsys):
    out = tmp_path / "gen.onnx"
    assert main(["export", "--preset", "tiny", str(out), "--verify-frames", "2"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max |difference|" in text and "trtexec --onnx=" in text


def test_tensorrt_path_is_guarded_where_tensorrt_is_missing(exported, tmp_path, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here: test_tensorrt_engine_builds covers it")
    except ImportError:
        pass
    _, path = exported
    code = main(["export", "--preset", "tiny", str(tmp_path / "g.onnx"), "--verify-frames", "0",
                 "--tensorrt", str(tmp_path / "g.plan")])
    assert code == 1 and "trtexec" in capsys.readouterr().err
    line = trtexec_command(path, "g.plan", read_onnx_config(path), max_batch=2)
    for name in ("prev_image:2x3x64x128", "prev_labels:2x64x128", "labels:2x64x128", "first_frame:2", "--fp16"):
        assert name in line


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT needs a CUDA device")
def test_tensorrt_engine_builds(exported, tmp_path):
    pytest.importorskip("tensorrt")
    from svsgan_core.runtime.export import build_tensorrt_engine

    _, path = exported
    engine = build_tensorrt_engine(path, tmp_path / "g.plan", max_batch=2, fp16=True)
    assert engine.stat().st_size > 0


@linux_only
def test_onnx_stream_memory_stays_flat(exported, tmp_path):
    """The CPU default path must also keep memory flat over long streams (the streaming contract: 10,000 frames)."""
    g, _ = exported
    synth = OnnxSynthesizer(export_onnx(g, tmp_path / "small.onnx", resolution="64x32"))
    synth.reset()
    lab, rss = labels(0, 32, 64), []
    for _ in range(600):
        lab = np.roll(lab, 1, axis=1)
        out = synth.step(lab)
        rss.append(rss_kb())
    assert out.std() > 0 and torch.isfinite(synth._default.prev_image).all()
    # onnxruntime settles within ~250 frames; keeping each 24 KB fp32 state grows ~24 KB/frame
    state_kb = 3 * 32 * 64 * 4 / 1024
    assert second_half_slope_kb(rss) < state_kb / 3, rss[300::50]
