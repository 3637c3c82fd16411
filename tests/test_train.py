"""The trainer: exact resume, data-parallel equivalence, configs, and clear errors for bad inputs."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from svsgan_core.cli import main as cli_main
from svsgan_core.errors import InputError, MissingWeightsError
from svsgan_core.train import distributed as D
from svsgan_core.train.options import TrainOptions, load_options
from svsgan_core.train.schedule import Schedule
from svsgan_core.train.trainer import Trainer, collate

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "training" / "configs").glob("*.yaml"))
SYNTHETIC_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "synthetic_cpu.yaml"
TINY_MODEL = {
    "height": 32, "width": 64, "dec_channels": [16, 16, 32], "img_channels": [8, 8, 16], "sem_channels": [8, 8, 16],
    "bottleneck_channels": 8, "spade_hidden": 16, "flow_channels": [8, 16], "flow_res_blocks": 1,
    "d_channels": [8, 16, 16], "dv_channels": [8, 16],
}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "train"
    assert cli_main(["make-synthetic", str(root), "--sequences", "4", "--frames", "4", "--size", "64x32"]) == 0
    return root


def tiny_options(root: Path, **sections) -> TrainOptions:
    data = {
        "run": {"name": "test", "seed": 3},
        "model": {"preset": "tiny", "overrides": TINY_MODEL},
        "data": {"kind": "synthetic", "root": str(root), "with_flow": True, "options": {"augment": True}},
        "loss": {"vgg": 0.0, "labelmix": 10.0},
        "optim": {"batch_size": 2, "frames_per_step": 2},
        "schedule": {"seq_lengths": [3, 4], "seq_length_every": 1, "constant_epochs": 1, "decay_epochs": 2,
                     "reference_prob": 0.5},
        "log": {"every": 1, "sample_every": 0, "checkpoint_every": 0, "keep_snapshots": False,
                "tensorboard": False, "progress": False},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return TrainOptions.from_dict(data)


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in (("G", trainer.G), ("D_I", trainer.D_I), ("D_V", trainer.D_V), ("ema", trainer.ema.model)):
        out.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    return out


def test_resume_continues_exactly(synthetic_root, tmp_path):
    """k steps, save, resume for m more == k + m steps in one go (saved mid-epoch, resumed across an epoch)."""
    k, m = 2, 3  # 4 clips, batch 1: epoch 1 (a new clip length and the LR decay) starts at step 4

    def options(steps: int) -> TrainOptions:
        return tiny_options(synthetic_root, optim={"batch_size": 1}, schedule={"max_steps": steps})

    straight = Trainer(options(k + m), tmp_path / "straight")
    straight.train()

    first = Trainer(options(k), tmp_path / "resumed")
    first.train()
    assert (tmp_path / "resumed" / "checkpoints" / "latest" / "generator.safetensors").is_file()
    second = Trainer(options(k + m), tmp_path / "resumed")
    second.resume(tmp_path / "resumed")
    assert second.step == k
    second.train()

    assert second.step == straight.step == k + m and second.epoch == straight.epoch
    a, b = _params(straight), _params(second)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key
    sa, sb = straight.opt_g.state_dict()["state"], second.opt_g.state_dict()["state"]
    assert torch.allclose(sa[0]["exp_avg_sq"], sb[0]["exp_avg_sq"], rtol=1e-5, atol=1e-9)


pytestmark = pytest.mark.usefixtures("one_thread")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_options(root: Path, batch_size: int) -> TrainOptions:
    return tiny_options(root, optim={"batch_size": batch_size, "frames_per_step": 4},
                        schedule={"max_steps": 1, "seq_lengths": [3]})


def _update(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The gradients of the (single) G and D updates of a one-chunk step, and the parameters after it."""
    out = {}
    for name, module in (("G", trainer.G), ("D_I", trainer.D_I), ("D_V", trainer.D_V)):
        for k, p in module.named_parameters():
            out[f"grad.{name}.{k}"] = (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
            out[f"param.{name}.{k}"] = p.detach().clone()
    return out


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info = D.init_distributed("cpu")
    try:
        trainer = Trainer(_ddp_options(Path(root), 1), Path(out) / "run", info)
        trainer.train()
        if rank == 0:
            torch.save(_update(trainer), Path(out) / "update.pt")
    finally:
        D.shutdown()


def test_two_gloo_processes_make_the_update_of_one_process_on_the_combined_batch(synthetic_root, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(synthetic_root), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp" / "update.pt", weights_only=True)
    single = Trainer(_ddp_options(synthetic_root, 2), tmp_path / "single")
    single.train()
    one = _update(single)
    assert ddp.keys() == one.keys()
    for net in ("G", "D_I", "D_V"):
        grads = [k for k in one if k.startswith(f"grad.{net}.")]
        scale = max(float(one[k].abs().max()) for k in grads)
        assert scale > 0
        # summation order differs: compare at the precision of the network's gradients. The occlusion
        # composite gives G gradients up to ~4 at the output; the deep 16x8 and 8x4 levels (instance-
        # normalised) then agree to ~3e-5 of that scale. A missing all-reduce differs by O(gradient).
        for key in grads:
            assert torch.allclose(ddp[key], one[key], rtol=1e-4, atol=1e-4 * scale), key
    # equal gradients, equal parameters, except where a gradient is zero up to rounding (e.g. biases
    # before an instance norm): Adam's first step lr * g / (|g| + eps) then takes the sign of noise
    diffs = torch.cat([(ddp[k] - one[k]).abs().flatten() for k in one if k.startswith("param.")])
    assert float((diffs > 1e-6).float().mean()) < 0.01


def test_two_trainer_steps_make_the_adam_updates_of_section_4_1(synthetic_root, tmp_path, monkeypatch):
    """Known gradients through train_step: the update is Adam's (Kingma & Ba, Alg. 1) with the paper's
    beta1 = 0.5, beta2 = 0.999, torch's eps = 1e-8 and the configured lr, no weight decay or clipping."""
    trainer = Trainer(tiny_options(synthetic_root, optim={"batch_size": 1, "frames_per_step": 4, "lr": 3e-4},
                                   schedule={"seq_lengths": [3]}), tmp_path / "run")
    trainer._begin_epoch(0)
    params = {**dict(trainer.G.named_parameters()),
              **{f"D.{k}": p for k, p in list(trainer.D_I.named_parameters()) + list(trainer.D_V.named_parameters())}}
    gen = torch.Generator().manual_seed(0)
    grads = [{k: torch.randn(p.shape, generator=gen, dtype=torch.float64) * 10.0 ** (s - 3) for k, p in params.items()}
             for s in range(2)]  # two steps, gradients of different scale, so beta1 and beta2 both matter
    calls = []

    def known_gradients(phase, chunk, scaler):
        step = len(calls) // 2
        for k, p in params.items():
            if k.startswith("D.") == (phase == "D"):
                p.grad = grads[step][k].to(p.dtype)
        calls.append(phase)
        return {}

    monkeypatch.setattr(trainer.loss, "accumulate_gradients", known_gradients)
    before = {k: p.detach().double().clone() for k, p in params.items()}
    batch = collate([trainer.dataset[0]])
    for _ in range(2):
        trainer.train_step(batch)
    assert calls == ["G", "D", "G", "D"]  # one chunk per step: one G and one D update

    lr, (b1, b2), eps = 3e-4, (0.5, 0.999), 1e-8
    g1, g2 = grads
    for k, p in params.items():
        m = b1 * (1 - b1) * g1[k] + (1 - b1) * g2[k]
        v = b2 * (1 - b2) * g1[k] ** 2 + (1 - b2) * g2[k] ** 2
        first = lr * g1[k] / (g1[k].abs() + eps)  # step 1: m_hat = g1, v_hat = g1^2
        second = lr * (m / (1 - b1 ** 2)) / ((v / (1 - b2 ** 2)).sqrt() + eps)
        expected = before[k] - first - second
        assert torch.allclose(p.detach().double(), expected, rtol=0, atol=1e-8 + 1e-6 * float(before[k].abs().max())), k


def test_schedule_follows_section_4_1():
    """Section 4.1, as the paper states it: 20 epochs at a constant rate while the clip length goes
    6 -> 12 -> 24 -> 30, one step every 5 epochs; then 20 epochs with a decaying rate; 40 in all."""
    s = Schedule(TrainOptions().schedule)
    assert s.total_epochs == 40
    assert [s.seq_length(e) for e in range(20)] == [6] * 5 + [12] * 5 + [24] * 5 + [30] * 5
    assert all(s.seq_length(e) == 30 for e in range(20, 40))  # "finally 30 frames"
    assert [s.lr_factor(e) for e in range(20)] == [1.0] * 20
    assert [s.stage(e) for e in (0, 19, 20, 39)] == ["progressive", "progressive", "decay", "decay"]
    decay = [s.lr_factor(e) for e in range(20, 40)]
    # the paper says only "decaying": every decay epoch runs below the one before, none at zero (an
    # epoch at lr 0 would be wasted), and the rate ends within one epoch's step of zero (a decay to 0)
    assert 1.0 > decay[0] and all(a > b > 0 for a, b in zip(decay, decay[1:]))
    assert decay[-1] <= 1 / 20 and decay[0] >= 1 - 1 / 20 - 1e-9
    assert TrainOptions().optim.betas == [0.5, 0.999]  # "Adam with beta1 = 0.5 and beta2 = 0.999"


def test_trainer_sets_the_scheduled_learning_rate_each_epoch(synthetic_root, tmp_path):
    trainer = Trainer(tiny_options(synthetic_root, optim={"lr": 1e-3}), tmp_path / "run")  # 1 constant, 2 decay
    rates = []
    for epoch in range(3):
        trainer._begin_epoch(epoch)
        rates.append([g["lr"] for opt in (trainer.opt_g, trainer.opt_d) for g in opt.param_groups])
    assert rates[0] == [1e-3, 1e-3] and all(1e-3 > a > b > 0 for a, b in zip(rates[1], rates[2]))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_validates(config, capsys, tmp_path, monkeypatch):
    opts = load_options(config)
    cfg = opts.model.config()
    assert cfg.height % 8 == 0 and opts.optim.betas == [0.5, 0.999]
    monkeypatch.chdir(tmp_path)  # the configs' relative data folders do not exist here
    assert cli_main(["train", "--config", str(config), "--check"]) == 1  # --check looks at the data too
    err = capsys.readouterr().err
    assert f"data.root {opts.data.root} is not a folder" in err and "--set data.root=FOLDER" in err
    roots = ["--set", f"data.root={tmp_path}"] + (["--set", f"data.sample_root={tmp_path}"] if opts.data.sample_root else [])
    assert cli_main(["train", "--config", str(config), "--check", *roots]) == 0
    assert "valid" in capsys.readouterr().out


def test_expected_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"cityscapes_512x256.yaml", "cityscapes_1024x512.yaml", "kitti360_512x128.yaml", "kitti360_1024x256.yaml",
            "carla.yaml", "synthetic_cpu.yaml"} <= names


def test_set_overrides_are_typed_and_unknown_keys_are_refused(synthetic_root, tmp_path):
    opts = load_options(SYNTHETIC_CONFIG, ["optim.lr=1e-4", "schedule.max_steps=7", f"data.root={synthetic_root}"])
    assert opts.optim.lr == 1e-4 and opts.schedule.max_steps == 7
    # a --set typo is the command line's: named as --set, with what the section takes (the file is fine)
    with pytest.raises(InputError, match=r"^--set optim.lrr: optim has no 'lrr'; it takes batch_size, .*\blr\b"):
        load_options(SYNTHETIC_CONFIG, ["optim.lrr=1"])
    with pytest.raises(InputError, match=r"^--set optimm.lr: unknown section 'optimm'; the sections are run, model, "):
        load_options(SYNTHETIC_CONFIG, ["optimm.lr=1"])
    assert load_options(SYNTHETIC_CONFIG, ["model.overrides.num_classes=20"]).model.overrides["num_classes"] == 20
    bad = tmp_path / "bad.yaml"
    bad.write_text(SYNTHETIC_CONFIG.read_text() + "\nschedul:\n  max_steps: 3\n")
    with pytest.raises(InputError, match=r"unknown section\(s\) schedul; the sections are run, model, data, loss, optim"):
        load_options(bad)
    with pytest.raises(InputError, match="optim.batch_size must be int"):
        load_options(SYNTHETIC_CONFIG, ["optim.batch_size=two"])


def test_missing_dataset_path_is_a_clear_error_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_such_dataset"
    with pytest.raises(InputError, match=str(missing)):
        Trainer(tiny_options(missing), tmp_path / "run")
    rc = cli_main(["train", "--config", str(SYNTHETIC_CONFIG), "--set", f"data.root={missing}", "--run-dir", str(tmp_path / "r")])
    assert rc == 1 and str(missing) in capsys.readouterr().err


def test_empty_sequence_is_a_clear_error_naming_it(synthetic_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    for f in (root / "seq_0002" / "images").iterdir():
        f.unlink()
    with pytest.raises(InputError, match=str(root / "seq_0002" / "images")):
        Trainer(tiny_options(root), tmp_path / "run")


def test_missing_vgg_weights_stop_the_trainer_with_the_path(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "th" / "hub" / "checkpoints")):
        Trainer(tiny_options(synthetic_root, loss={"vgg": 10.0}), tmp_path / "run")


def test_run_folder_has_options_log_samples_and_a_loadable_checkpoint(synthetic_root, tmp_path):
    import cv2

    from svsgan_core.runtime.synthesizer import VideoSynthesizer

    opts = tiny_options(synthetic_root, schedule={"max_steps": 1}, log={"sample_every": 1, "sample_frames": 3})
    trainer = Trainer(opts, tmp_path / "run")
    trainer.write_options()
    trainer.train()
    run = tmp_path / "run"
    assert load_options(None, base=__import__("yaml").safe_load((run / "options.yaml").read_text())).optim.batch_size == 2
    assert '"G_total"' in (run / "log.jsonl").read_text()
    video = cv2.VideoCapture(str(run / "samples" / "step-0000001.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 4 * 64  # labels | with reference | first-frame mode | real
    synth = VideoSynthesizer.from_checkpoint(run / "checkpoints" / "latest")
    assert synth.step(torch.zeros(32, 64, dtype=torch.int64).numpy()).shape == (32, 64, 3)


def test_resolution_stage_grows_the_lower_resolution_run(synthetic_root, tmp_path):
    from svsgan_core.models.config import ModelConfig
    from svsgan_core.runtime.checkpoint import load_generator

    low = Trainer(tiny_options(synthetic_root, schedule={"max_steps": 1}), tmp_path / "low")
    low.train()
    grown = ModelConfig(**{**tiny_options(synthetic_root).model.config().to_dict()}).grown().to_dict()
    opts = tiny_options(synthetic_root, model={"overrides": grown, "init_from": str(tmp_path / "low")},
                        schedule={"max_steps": 1, "seq_lengths": [2]})
    high = Trainer(opts, tmp_path / "high")
    assert (high.cfg.height, high.cfg.width) == (64, 128) and high.G.cfg.to_dict() == grown
    low_dec = low.G.decoder[0].conv0.parametrizations.weight.original
    assert torch.equal(high.G.decoder[1].conv0.parametrizations.weight.original, low_dec)
    high.train()
    assert load_generator(tmp_path / "high" / "checkpoints" / "latest").cfg.height == 64


def test_resolution_stage_carries_the_lower_ema_grown_like_the_generator(synthetic_root, tmp_path):
    """The grown model's EMA starts from the lower stage's EMA (not from the raw weights), its new layers
    are the raw generator's, and the new block fades in; at the same resolution nothing fades."""
    from svsgan_core.models.config import ModelConfig
    from svsgan_core.runtime.checkpoint import read_weights

    low = Trainer(tiny_options(synthetic_root, schedule={"max_steps": 2}), tmp_path / "low")
    low.train()
    low_ema = read_weights(tmp_path / "low" / "checkpoints" / "latest")
    low_raw = read_weights(tmp_path / "low" / "checkpoints" / "latest", "generator_train.safetensors")
    key = "decoder.0.conv0.parametrizations.weight.original"
    assert not torch.equal(low_ema[key], low_raw[key])  # two steps: the average differs from the raw weights
    grown = ModelConfig(**tiny_options(synthetic_root).model.config().to_dict()).grown().to_dict()
    opts = tiny_options(synthetic_root, model={"overrides": grown, "init_from": str(tmp_path / "low")},
                        schedule={"max_steps": 1, "seq_lengths": [2], "fade_steps": 4})
    high = Trainer(opts, tmp_path / "high")
    ema, raw = high.ema.model.state_dict(), high.G.state_dict()
    torch.testing.assert_close(ema["decoder.1.conv0.parametrizations.weight.original"], low_ema[key], rtol=0, atol=0)
    torch.testing.assert_close(raw["decoder.1.conv0.parametrizations.weight.original"], low_raw[key], rtol=0, atol=0)
    new = [k for k in raw if k.startswith("decoder.0.")]
    assert new and all(torch.equal(ema[k], raw[k]) for k in new)  # identical new layers
    assert high.grown == 1 and high.ema.current_decay() == opts.optim.ema_decay  # no warm-up restart
    high.train_step(next(iter(high._loader(0, 0))))
    assert high.G.fade == 0.0  # step 0 of 4: the new block is still faded out
    high.step = 2
    high.train_step(next(iter(high._loader(0, 0))))
    assert high.G.fade == 0.5 and high.ema.model.fade == 0.5

    same = Trainer(tiny_options(synthetic_root, model={"init_from": str(tmp_path / "low")},
                                schedule={"max_steps": 1, "fade_steps": 4}), tmp_path / "same")
    assert same.grown == 0
    torch.testing.assert_close(same.G.state_dict()[key], low_raw[key], rtol=0, atol=0)
    same.train_step(next(iter(same._loader(0, 0))))
    assert same.G.fade == 1.0  # nothing was grown, so the trained finest block is not faded out


def test_cli_trains_and_resumes_a_run(synthetic_root, tmp_path):
    import json

    import yaml

    run = tmp_path / "run"
    common = ["--set", f"data.root={synthetic_root}", "--set", f"data.sample_root={synthetic_root}",
              "--set", f"model.overrides={json.dumps(TINY_MODEL)}", "--set", "log.sample_every=0",
              "--set", "log.progress=false", "--set", "log.tensorboard=false", "--set", "schedule.seq_lengths=[3]"]
    assert cli_main(["train", "--config", str(SYNTHETIC_CONFIG), "--run-dir", str(run), "--threads", "1",
                     "--set", "schedule.max_steps=1", *common]) == 0
    saved = yaml.safe_load((run / "options.yaml").read_text())
    assert saved["schedule"]["max_steps"] == 1 and saved["_resolved"]["world_size"] == 1
    assert cli_main(["train", "--resume", str(run), "--set", "schedule.max_steps=2"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_class_colours_start_at_the_training_datas_class_means(synthetic_root, tmp_path):
    from svsgan_core.metrics.pixels import ClassMeanBaseline

    opts = tiny_options(synthetic_root, model={"overrides": {**TINY_MODEL, "class_colour": True}},
                        data={"options": {"augment": False}})
    trainer = Trainer(opts, tmp_path / "run")
    baseline = ClassMeanBaseline()
    for i in range(len(trainer.dataset)):
        item = trainer.dataset[i]
        baseline.fit(item["images"][:1].add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy(),
                     item["labels"][:1].numpy())
    weight = trainer.G.class_colour.weight[:, :, 0, 0].t()  # classes x RGB, before the tanh
    seen = baseline.counts[:19] > 0
    assert seen.sum() >= 3
    expected = torch.from_numpy(baseline.means[:19].astype("float32")) / 127.5 - 1
    torch.testing.assert_close(torch.tanh(weight[seen]), expected[seen].clamp(-0.95, 0.95), atol=1e-5, rtol=0)
    assert not weight[~seen].any()  # a class the data never shows starts at no colour of its own
    # and the decoder's own colour starts at zero: step 0's first-frame output is the class-mean painting
    labels = trainer.dataset[0]["labels"][:1]
    with torch.no_grad():
        painted = trainer.G.eval()(labels).image[0]
    valid = labels[0] < 19
    torch.testing.assert_close(painted[:, valid], torch.tanh(weight[labels[0][valid]]).t(), atol=1e-6, rtol=0)
