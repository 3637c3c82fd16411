"""`svsgan convert --executor ray`: on a local Ray instance, three inputs of which one is truncated;
on a running cluster (joined through RAY_ADDRESS), an actor that dies mid-bag.

The Ray actors run the same per-bag conversion as one process, so the generated topics must be the
same bytes (the first test's sequences start from the RGB camera, a --map REFERENCE); a bad bag or a dead actor fails that bag alone (in summary.json, non-zero exit) and a
rerun with --skip-existing converts only what is not complete.
"""
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from rosbags.rosbag2 import Reader

from svsgan_core.cli import main as cli_main
from svsgan_core.io.conversion import ConvertOptions, TopicMap, convert_bag
from svsgan_core.io.synthetic_bag import INSTANCE_TOPIC, RGB_TOPIC, SEMANTIC_TOPIC, write_semantic_bag
from svsgan_core.models import SVSGenerator
from svsgan_core.models.config import ModelConfig
from svsgan_core.runtime.checkpoint import save_checkpoint
from svsgan_core.runtime.synthesizer import VideoSynthesizer

pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("one_thread")
FRAMES, H, W = 3, 32, 64


def tiny_config() -> ModelConfig:
    return ModelConfig(height=32, width=64, dec_channels=[16, 16, 32, 32], img_channels=[8, 8, 16, 16],
                       sem_channels=[8, 8, 16, 16], bottleneck_channels=8, spade_hidden=16, flow_channels=[8, 16],
                       flow_res_blocks=1, d_channels=[8, 16, 16, 32], dv_channels=[8, 16, 32])


def generated(bag) -> list[bytes]:
    with Reader(bag) as r:
        return [bytes(data) for _, _, data in r.messages([c for c in r.connections if c.topic == "/gen"])]


@pytest.fixture
def ray_cluster(monkeypatch):
    """A running one-node Ray cluster (its own GCS and raylet processes, as `ray start --head` makes
    them) that the command joins through RAY_ADDRESS instead of starting an instance of its own.
    Ray's test cluster is used rather than `ray start`, whose `ray stop` would end every Ray
    instance on the machine, a developer's own included."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    try:
        yield cluster
    finally:
        cluster.shutdown()


def test_ray_converts_good_bags_like_one_process_and_reports_the_truncated_one(tmp_path, ray_cluster, monkeypatch,
                                                                              capsys):
    # no RAY_ADDRESS: a local Ray instance started by the command, also while another Ray cluster runs
    # on the machine (a plain ray.init would try to join that one and refuse --workers CPUs)
    monkeypatch.delenv("RAY_ADDRESS")
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SVSGenerator(tiny_config()))
    a = write_semantic_bag(tmp_path / "in" / "a", frames=FRAMES, height=H, width=W, seed=1, rgb=True, instances=True)
    b = write_semantic_bag(tmp_path / "in" / "b", frames=FRAMES, height=H, width=W, seed=2, rgb=True, instances=True)
    bad = shutil.copytree(b, tmp_path / "in" / "bad")
    (storage,) = bad.glob("*.mcap")
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 2])  # a recording cut short

    options = ConvertOptions([TopicMap(SEMANTIC_TOPIC, "/gen", RGB_TOPIC)], instances={SEMANTIC_TOPIC: INSTANCE_TOPIC})
    synth = VideoSynthesizer.from_checkpoint(ckpt)
    results = {name: convert_bag(src, tmp_path / "ref" / name, synth, options, progress=False)
               for name, src in (("a", a), ("b", b))}
    assert all(r.references[SEMANTIC_TOPIC]["from_reference"] == 1 for r in results.values())
    assert all(r.instances[SEMANTIC_TOPIC]["paired"] == FRAMES for r in results.values())
    reference = {name: generated(r.output) for name, r in results.items()}
    assert all(len(v) == FRAMES for v in reference.values()) and reference["a"] != reference["b"]

    out = tmp_path / "out"
    cmd = ["convert", str(a), str(b), str(bad), str(out), "--checkpoint", str(ckpt),
           "--map", f"{SEMANTIC_TOPIC}:/gen:{RGB_TOPIC}", "--instances", f"{SEMANTIC_TOPIC}={INSTANCE_TOPIC}",
           "--executor", "ray", "--workers", "2", "--no-progress"]
    assert cli_main(cmd) != 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    status = {e["input"].rsplit("/", 1)[-1]: e for e in summary["inputs"]}
    assert {k: v["status"] for k, v in status.items()} == {"a": "done", "b": "done", "bad": "failed"}
    assert status["bad"]["error"] and "bad: failed" in printed
    assert (summary["done"], summary["failed"], summary["skipped"]) == (2, 1, 0)
    assert [status[n]["topics"][SEMANTIC_TOPIC]["reference"]["from_reference"] for n in ("a", "b")] == [1, 1]
    assert [status[n]["topics"][SEMANTIC_TOPIC]["instances"]["paired"] for n in ("a", "b")] == [FRAMES, FRAMES]
    for name in ("a", "b"):
        assert generated(out / name) == reference[name]
    assert not (out / "bad").exists()
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "summary.json"]  # no partial left

    stamp = {n: (out / n / "metadata.yaml").stat().st_mtime_ns for n in ("a", "b")}
    assert cli_main(cmd + ["--skip-existing"]) != 0
    summary = json.loads((out / "summary.json").read_text())
    assert [e["status"] for e in summary["inputs"]] == ["skipped", "skipped", "failed"]
    assert {n: (out / n / "metadata.yaml").stat().st_mtime_ns for n in ("a", "b")} == stamp


def test_a_bag_that_fails_mid_conversion_is_an_outcome_not_an_exception(tmp_path):
    """What each Ray actor (and local worker) runs: a bag that opens but cannot be converted (its
    mapped topic is missing) comes back as `failed` with the error, and nothing is left at its output."""
    from svsgan_core.commands.convert import convert_one

    torch.manual_seed(0)
    synth = VideoSynthesizer.from_checkpoint(save_checkpoint(tmp_path / "ckpt", SVSGenerator(tiny_config())))
    src = write_semantic_bag(tmp_path / "in", frames=1, height=H, width=W)
    outcome = convert_one(src, tmp_path / "out", synth, ConvertOptions([TopicMap("/no/such/topic", "/gen")]),
                          False, "ckpt")
    assert outcome["status"] == "failed" and "/no/such/topic" in outcome["error"]
    assert not (tmp_path / "out").exists()


def test_an_actor_that_dies_mid_bag_fails_that_bag_only_and_a_rerun_finishes_the_job(tmp_path, ray_cluster,
                                                                                     monkeypatch):
    from svsgan_core.commands import convert as convert_cmd

    class DiesInDoomed(convert_cmd.BagActor):
        """Exits after 2 frames of the bag named doomed, as a worker on a preempted node would."""

        def convert(self, src, *args):
            self.doomed = Path(src).name == "doomed"
            return super().convert(src, *args)

        def _count(self, event):
            super()._count(event)
            if self.doomed and self.frames == 2:
                os._exit(1)

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", SVSGenerator(tiny_config()))
    inputs = {name: write_semantic_bag(tmp_path / "in" / name, frames=FRAMES, height=H, width=W, seed=seed)
              for seed, name in enumerate(("doomed", "a", "b"))}
    synth = VideoSynthesizer.from_checkpoint(ckpt)
    options = ConvertOptions([TopicMap(SEMANTIC_TOPIC, "/gen")])
    reference = {name: generated(convert_bag(src, tmp_path / "ref" / name, synth, options, progress=False).output)
                 for name, src in inputs.items()}

    out = tmp_path / "out"
    # one actor: the doomed bag goes first, so a and b can only be converted by its replacement
    cmd = ["convert", *map(str, inputs.values()), str(out), "--checkpoint", str(ckpt),
           "--map", f"{SEMANTIC_TOPIC}:/gen", "--executor", "ray", "--workers", "1", "--no-progress"]
    plain = convert_cmd.BagActor
    monkeypatch.setattr(convert_cmd, "BagActor", DiesInDoomed)
    assert cli_main(cmd) != 0
    summary = json.loads((out / "summary.json").read_text())
    status = {Path(e["input"]).name: e for e in summary["inputs"]}
    assert {k: v["status"] for k, v in status.items()} == {"doomed": "failed", "a": "done", "b": "done"}
    assert "Ray worker failed" in status["doomed"]["error"]
    for name in ("a", "b"):
        assert generated(out / name) == reference[name]
    # the dead actor's partial bag went when its replacement, on the same host, wrote into the folder
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "summary.json"]

    monkeypatch.setattr(convert_cmd, "BagActor", plain)
    assert cli_main(cmd + ["--skip-existing"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [e["status"] for e in summary["inputs"]] == ["done", "skipped", "skipped"]
    assert generated(out / "doomed") == reference["doomed"]
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "doomed", "summary.json"]
