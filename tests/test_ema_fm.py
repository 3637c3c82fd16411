"""The EMA generator's spectral norm after real training steps, and the feature-matching weighting."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from svsgan_core.cli import main as cli_main
from svsgan_core.losses import feature_matching, video_feature_matching
from svsgan_core.losses.total import LossConfig, SVSGANLoss
from svsgan_core.runtime.checkpoint import load_generator, prepare_for_inference
from svsgan_core.train.ema import spectral_norm_parts
from svsgan_core.train.options import TrainOptions
from svsgan_core.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MODEL = {
    "height": 32, "width": 64, "dec_channels": [16, 16, 32], "img_channels": [8, 8, 16], "sem_channels": [8, 8, 16],
    "bottleneck_channels": 8, "spade_hidden": 16, "flow_channels": [8, 16], "flow_res_blocks": 1,
    "d_channels": [8, 16, 16], "dv_channels": [8, 16],
}


def _options(root: Path, steps: int) -> TrainOptions:
    """The tiny model with a large G learning rate: the live weights move far in a few steps."""
    return TrainOptions.from_dict({
        "run": {"name": "ema", "seed": 5},
        "model": {"preset": "tiny", "overrides": TINY_MODEL},
        "data": {"kind": "synthetic", "root": str(root), "with_flow": True},
        "loss": {"vgg": 0.0},
        "optim": {"batch_size": 2, "frames_per_step": 2, "lr_g": 0.01, "ema_decay": 0.999},
        "schedule": {"seq_lengths": [3], "max_steps": steps, "reference_prob": 1.0},
        "log": {"every": 1, "sample_every": 0, "checkpoint_every": 0, "keep_snapshots": False,
                "tensorboard": False, "progress": False},
    })


def _top_singular_value(weight: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().flatten(1).double(), ord=2))


def test_ema_folds_the_spectral_norm_of_its_own_averaged_weights(tmp_path):
    root = tmp_path / "data"
    assert cli_main(["make-synthetic", str(root), "--sequences", "2", "--frames", "3", "--size", "64x32"]) == 0
    trainer = Trainer(_options(root, 8), tmp_path / "run")
    trainer.ema.updates = 10_000  # late in a long run: decay 0.999, the average lags the live weights
    trainer.train()
    ema, live = trainer.ema.model, trainer.G
    assert not ema.training
    names = {}
    for name, m in ema.named_modules():
        if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
            names[name] = m
    assert len(names) >= 6
    for name, m in names.items():
        averaged = m.parametrizations.weight.original
        folded = m.weight  # eval mode: weight_orig / sigma(u, v), what fold_spectral_norm keeps
        assert abs(_top_singular_value(folded) - 1.0) < 0.01, name
        assert not torch.equal(averaged, dict(live.named_modules())[name].parametrizations.weight.original)

    # what the checkpoint ships and inference folds (VideoSynthesizer's prepare_for_inference): unit spectral norm at the same modules
    shipped = dict(prepare_for_inference(load_generator(tmp_path / "run" / "checkpoints" / "latest")).named_modules())
    for name in names:
        assert abs(_top_singular_value(shipped[name].weight) - 1.0) < 0.01, name


def test_spectral_norm_parts_finds_every_normalised_weight():
    from svsgan_core.models import SVSGenerator
    from svsgan_core.models.config import preset

    cfg = preset("tiny")
    g = SVSGenerator(cfg)
    n = sum(1 for m in g.modules() if hasattr(m, "parametrizations"))
    assert n > 0 and len(list(spectral_norm_parts(g))) == n


def _scale(diff: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One temporal scale's (logits, features) whose features sit `diff` away from zero."""
    return torch.zeros(1, 1, 2, 2), [torch.full((1, 4, 2, 2), diff), torch.full((1, 4, 1, 1), diff)]


def test_video_feature_matching_is_one_lambda_fm_for_the_temporal_family():
    """Two temporal scales 1 and 3 apart: L_FM(D_V) is their mean (2), weighted by lambda_FM once,
    as L_FM(D_I) is; the old sum (4, i.e. 2 lambda_FM) fails."""
    fake, real = [_scale(1.0), _scale(3.0)], [_scale(0.0), _scale(0.0)]
    assert float(video_feature_matching(fake, real)) == pytest.approx(2.0)
    loss = SVSGANLoss(LossConfig(vgg=0.0, video=0.0, fm=10.0), num_classes=3)
    terms = loss.generator_video(fake, real)
    assert set(terms) == {"G_fm_video"}
    assert float(loss.total(terms)) == pytest.approx(20.0)
    # the image family at the same distance gets the same weight
    image = {"G_fm_image": feature_matching(_scale(2.0)[1], _scale(0.0)[1])}
    assert float(loss.total(image)) == pytest.approx(float(loss.total(terms)))
    # one scale alone (short history) is that scale's value
    assert float(video_feature_matching(fake[1:], real[1:])) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="temporal scales"):
        video_feature_matching(fake, real[:1])
