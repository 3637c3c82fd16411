"""The class palette with objects (ModelConfig.palette_instances, issue 24): two touching cars of one class
start at their own colours in the palette's source frame instead of one class colour, follow their ids from
frame to frame, in training, in a stream (PyTorch and the ONNX graph) and through eval."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from svsgan_core.cli import main
from svsgan_core.errors import InputError
from svsgan_core.models import SVSGenerator
from svsgan_core.models.generator import PaletteObjects, palette_slots
from svsgan_core.models.config import ModelConfig

from test_instance_edges import CAR, MICRO, ROAD, touching_run, two_cars

PALETTE = {**MICRO, "occlusion_composite": False, "detail_from_decoder": False, "class_palette": True,
           "palette_instances": 4}


def test_palette_slots_follow_objects_by_id_and_leave_one_segment_classes_to_the_class_palette():
    """Slots go to the source frame's objects of classes drawn as several segments, largest first, and
    mark the same (class, id) in the current frame; stuff, unseen objects and objects over the budget get 0."""
    src_lab = torch.tensor([[[ROAD, ROAD, CAR, CAR, CAR, CAR, CAR, 5]]])
    src_ids = torch.tensor([[[0, 0, 7, 7, 7, 9, 9, 0]]])
    lab = torch.tensor([[[CAR, CAR, CAR, CAR, CAR, ROAD, 5, CAR]]])
    ids = torch.tensor([[[9, 9, 7, 7, 7, 0, 0, 4]]])
    source, now = palette_slots(src_lab, src_ids, lab, ids, 4)
    assert source.tolist() == [[[0, 0, 1, 1, 1, 2, 2, 0]]]  # car 7 (3 px) first, car 9 second
    assert now.tolist() == [[[2, 2, 1, 1, 1, 0, 0, 0]]]  # they moved; car 4 is new: no colour of its own
    source, now = palette_slots(src_lab, src_ids, lab, ids, 1)  # budget of one: the larger car only
    assert source.tolist() == [[[0, 0, 1, 1, 1, 0, 0, 0]]] and now.tolist() == [[[0, 0, 1, 1, 1, 0, 0, 0]]]
    other_class = lab.clone()
    other_class[0, 0, :2] = ROAD  # id 9 now on a road pixel: another segment, not car 9
    assert palette_slots(src_lab, src_ids, other_class, ids, 4)[1].tolist() == [[[0, 0, 1, 1, 1, 0, 0, 0]]]
    with pytest.raises(InputError, match="class_palette"):
        ModelConfig(**{**PALETTE, "class_palette": False})


@torch.no_grad()
def test_each_touching_car_starts_at_its_own_colour_in_the_source_frame():
    """With the decoder's own output silenced (its init): class palette alone paints both cars their class's
    mean; with slots each car takes its own mean in the source frame, also after both moved, and a car the
    source does not show keeps the class's. step() (the graph) computes the same with the anchor's slots."""
    torch.manual_seed(0)
    g = SVSGenerator(ModelConfig(**PALETTE)).eval()
    labels, _, two = two_cars()
    labels, two = labels[None], two[None]
    prev = torch.full((1, 3, 32, 64), 0.1)
    prev[:, :, two[0] == 1], prev[:, :, two[0] == 2] = 0.6, -0.4
    now, now_ids = labels.roll(3, 2), two.roll(3, 2)
    now_ids[:, :, 45:] = torch.where(now_ids[:, :, 45:] == 2, 3, now_ids[:, :, 45:])  # part of car 2 is car 3 now
    source_slots, slots = palette_slots(labels, two, now, now_ids, 4)
    out = g(now, labels, prev, slots=slots, source_slots=source_slots).image[0]
    plain = g(now, labels, prev).image[0]
    torch.testing.assert_close(out[:, 16, 20], torch.full((3,), 0.6), rtol=0, atol=1e-5)  # car 1, moved 3 px
    torch.testing.assert_close(out[:, 16, 40], torch.full((3,), -0.4), rtol=0, atol=1e-5)  # car 2
    class_mean = prev[0][:, labels[0] == CAR].mean(1)
    torch.testing.assert_close(out[:, 16, 50], class_mean, rtol=0, atol=1e-5)  # car 3: its class's colour
    torch.testing.assert_close(plain[:, 16, 20], class_mean, rtol=0, atol=1e-5)
    torch.testing.assert_close(plain[:, 16, 40], class_mean, rtol=0, atol=1e-5)
    step = g.step(prev, labels, now, torch.zeros(1), anchor_image=prev, anchor_labels=labels, slots=slots,
                  anchor_slots=source_slots)
    torch.testing.assert_close(step[0], out, rtol=0, atol=1e-5)


def test_a_stream_keeps_each_object_its_first_frame_colour_in_pytorch_and_onnx(tmp_path, one_thread):
    """A reference with two differently coloured touching cars, ids given at twice the model's size (resized
    with the labels, their values kept, so a car entering with a smaller id changes nothing): later frames draw each car in its own colour in PyTorch and in the
    exported graph alike; without ids the stream paints one class colour across the seam."""
    pytest.importorskip("onnxruntime")
    from svsgan_core.runtime.export import compare_with_pytorch, export_onnx, graph_inputs
    from svsgan_core.runtime.synthesizer import OnnxSynthesizer, VideoSynthesizer

    torch.manual_seed(0)
    g = SVSGenerator(ModelConfig(**PALETTE)).eval()
    torch.nn.init.normal_(g.to_rgb[1].weight, std=0.02)  # a small residual of the decoder's, as trained
    labels, _, two = two_cars(64, 128)
    ids = (two * 1000 + 70000).numpy()  # ids far above 65535: not a cv2 type, resized by their order
    ref = np.full((64, 128, 3), 128, np.uint8)
    ref[two.numpy() == 1], ref[two.numpy() == 2] = (230, 40, 40), (40, 40, 230)
    path = export_onnx(g, tmp_path / "objects.onnx")
    assert graph_inputs(g.cfg)[-2:] == ("slots", "anchor_slots")
    assert max(compare_with_pytorch(g, path, frames=3, batch=2)) < 1e-3
    torch_synth, onnx_synth = VideoSynthesizer(g), OnnxSynthesizer(path)
    s_torch, s_plain, s_onnx = torch_synth.stream(), torch_synth.stream(), onnx_synth.stream()
    for synth, stream in ((torch_synth, s_torch), (torch_synth, s_plain), (onnx_synth, s_onnx)):
        synth.reset(reference_image=ref, stream=stream)
    for k in range(3):
        lab, inst = (np.roll(x, 2 * k, axis=1) for x in (labels.numpy().astype(np.uint8), ids))
        if k:  # a third car drives in with a smaller id: the others' ranks among the frame's ids change
            inst[lab == CAR] = np.where(np.arange(128)[None].repeat(64, 0)[lab == CAR] >= 110 + 2 * k, 50,
                                        inst[lab == CAR])
        out = dict(zip(("torch", "no ids"),  # one batch, a camera with ids beside one without (the node's mix)
                       torch_synth.step_batch([lab, lab], [s_torch, s_plain], instances=[inst, None])))
        out["onnx"] = onnx_synth.step(lab, s_onnx, instances=inst)
        assert np.abs(out["torch"].astype(int) - out["onnx"]).max() <= 2, k
        if k == 0:
            continue  # the reference itself
        left, right = out["torch"][32, 20 + 2 * k], out["torch"][32, 100 + 2 * k]
        assert left[0] > left[2] + 100 and right[2] > right[0] + 100, (k, left, right)  # red car, blue car
        plain_left, plain_right = out["no ids"][32, 20 + 2 * k], out["no ids"][32, 100 + 2 * k]
        assert np.abs(plain_left.astype(int) - plain_right).max() < 40, k  # one colour across the seam


def test_a_tiny_run_with_object_colours_trains_on_the_clips_ids_and_eval_reads_it(tmp_path, capsys, monkeypatch,
                                                                                   one_thread):
    """The trainer reads the instance ids for such a model and G gets the slots of I_{i-1}'s objects; eval
    gives the checkpoint the data's ids."""
    from svsgan_core.runtime.checkpoint import read_config

    trainer, data = touching_run(tmp_path, capsys, PALETTE, loss={"labelmix": 0.0}, schedule={"reference_prob": 1.0})
    seen = []
    forward = SVSGenerator.forward

    def spy(self, *args, **kwargs):
        if args[2:3] and args[2] is not None:  # a frame with a previous one
            seen.append(int(kwargs["slots"].max()) if kwargs.get("slots") is not None else -1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(SVSGenerator, "forward", spy)
    trainer.train()
    assert seen and -1 not in seen and max(seen) >= 2  # two or more of I_{i-1}'s objects have their colour
    seen.clear()
    item = trainer.sample_dataset()[0]  # the run's sample videos show the objects' colours too
    trainer.generate(trainer.ema.model, item["labels"], item["images"][0], None, item["instances"])
    assert seen and -1 not in seen and max(seen) >= 2
    monkeypatch.setattr(SVSGenerator, "forward", forward)
    ckpt = tmp_path / "run" / "checkpoints" / "latest"
    assert read_config(ckpt)[0].palette_instances == 4
    calls = []
    find = PaletteObjects.find

    def count(self, *args):
        calls.append(1)
        return find(self, *args)

    monkeypatch.setattr(PaletteObjects, "find", count)
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--sequence-length", "4",
                 "--metrics", "boundary,l1", "--out", str(tmp_path / "eval"), "--no-progress"]) == 0
    assert calls  # the stream found the first frame's objects in the data's ids
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]
    assert metrics["boundary_pairs"] > 0 and 0 < metrics["l1"] < 2
