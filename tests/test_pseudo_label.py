"""`svsgan pseudo-label` and the one segmenter loader it shares with mIoU, on tiny random SegFormers.

The models are random-initialised and saved with save_pretrained into tmp folders: nothing is
downloaded. Random weights give arbitrary (but deterministic) classes, so the tests compare against
the model run directly through transformers rather than against fixed pictures.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from svsgan_core.cli import main
from svsgan_core.commands.pseudo_label import folder_jobs, pseudo_label
from svsgan_core.data.layouts import cityscapes_sequences, find_sequences, read_label
from svsgan_core.errors import CheckpointError, InputError
from svsgan_core.data.labels import get_label_space
from svsgan_core.metrics.miou import IGNORE_LABEL, Segmenter, label_map_by_name

transformers = pytest.importorskip("transformers")

CITYSCAPES = get_label_space("cityscapes").class_names


def save_segformer(folder, names, seed=0):
    """A two-stage SegFormer with a few thousand weights; id2label = `names`."""
    torch.manual_seed(seed)
    config = transformers.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
        strides=[4, 2], num_attention_heads=[1, 1], mlp_ratios=[2, 2], decoder_hidden_size=16,
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = transformers.SegformerForSemanticSegmentation(config).eval()
    with torch.no_grad():  # spread the classifier so several classes win somewhere
        model.decode_head.classifier.weight.mul_(50)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def segformer(tmp_path_factory):
    return save_segformer(tmp_path_factory.mktemp("segformer"), CITYSCAPES)


def imagenet_pixels(images):
    """N x 3 x H x W float32 as the loader feeds models without a preprocessor_config.json."""
    mean, std = np.float32([0.485, 0.456, 0.406]), np.float32([0.229, 0.224, 0.225])
    return ((images.astype(np.float32) / 255 - mean) / std).transpose(0, 3, 1, 2).copy()


def raw_classes(folder, images):
    """Argmax of the transformers model itself at full resolution (what the loader should reproduce)."""
    model = transformers.AutoModelForSemanticSegmentation.from_pretrained(folder, local_files_only=True).eval()
    x = imagenet_pixels(images)
    with torch.no_grad():
        logits = model(pixel_values=torch.from_numpy(x)).logits
    classes = logits.argmax(1).numpy().astype(np.int32)
    h, w = images.shape[1:3]
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_NEAREST) for c in classes])


def random_images(n, h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 255, (n * 4, 6, 3)).astype(np.uint8), (w, h * n), interpolation=cv2.INTER_CUBIC)
    return np.stack(np.split(base, n))


def write_png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_folder_layout_writes_a_trainable_dataset_in_the_label_space(tmp_path, segformer, capsys):
    images = random_images(5)
    for i in range(3):
        write_png(tmp_path / "drive" / "seq_a" / "images" / f"{i:06d}.png", images[i])
    for i in range(2):
        write_png(tmp_path / "drive" / "seq_b" / "images" / f"{i:06d}.png", images[3 + i])
    (tmp_path / "drive" / "dataset.yaml").write_text(yaml.safe_dump({"source": "drive.mcap"}))
    out = tmp_path / "labelled"
    assert main(["pseudo-label", str(tmp_path / "drive"), str(out), "--segmenter", str(segformer),
                 "--label-space", "kitti360", "--batch", "2", "--device", "cpu", "--no-progress"]) == 0
    assert "wrote 5 label maps" in capsys.readouterr().out

    sequences = find_sequences("folder", out)  # the datasets read what was written
    assert [(s.name, len(s), s.label_space) for s in sequences] == [("seq_a", 3, "kitti360"), ("seq_b", 2, "kitti360")]
    info = yaml.safe_load((out / "dataset.yaml").read_text())
    assert info["source"] == "drive.mcap" and info["pseudo_labels"]["segmenter"] == str(segformer)
    # kitti360 ids are Cityscapes labelIds: trainId k of the model -> the labelId of the same name
    to_kitti = np.array(label_map_by_name(CITYSCAPES, "kitti360"))
    expected = to_kitti[raw_classes(segformer, images)]
    labels = np.stack([read_label(f.label) for s in sequences for f in s.frames])
    assert labels.shape == (5, 64, 96) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, expected)
    assert len(np.unique(labels)) > 1 and set(np.unique(labels)) <= set(to_kitti.tolist())
    assert not list(out.rglob("*.tmp"))


def test_cityscapes_layout_mirrors_leftimg8bit_sequence(tmp_path, segformer):
    images = random_images(4, 32, 64, seed=1)
    root = tmp_path / "cityscapes"
    for i in range(4):
        write_png(root / "leftImg8bit_sequence" / "val" / "lindau" / f"lindau_000001_{19 + i:06d}_leftImg8bit.png",
                  images[i])
    assert main(["pseudo-label", str(root), str(root / "pseudo_labels_sequence"), "--segmenter", str(segformer),
                 "--batch", "3", "--no-progress"]) == 0
    [sequence] = cityscapes_sequences(root, split="val")  # default label root and suffix
    assert sequence.name == "val/lindau_000001_000019" and len(sequence) == 4
    assert sequence.frames[0].label.name == "lindau_000001_000019_labelTrainIds.png"
    labels = np.stack([read_label(f.label) for f in sequence.frames])
    np.testing.assert_array_equal(labels, raw_classes(segformer, images))
    assert labels.shape == (4, 32, 64) and labels.max() < 19


def test_classes_are_matched_by_name_not_by_position(tmp_path):
    names = ["Sky", "road", "traffic_light", "person", "lamp post"]
    assert label_map_by_name(names, "cityscapes", {"lamp post": None}) == [10, 0, 6, 11, IGNORE_LABEL]
    assert label_map_by_name(names[:4], "kitti360") == [23, 7, 19, 24]
    assert label_map_by_name(["person"], "carla", {"person": "pedestrian"}) == [12]

    folder = save_segformer(tmp_path / "shuffled", names[:4], seed=3)
    seg = Segmenter(folder, label_space="cityscapes")
    images = random_images(2, seed=2)
    np.testing.assert_array_equal(seg.predict(images), np.array([10, 0, 6, 11])[raw_classes(folder, images)])


def test_names_the_label_space_lacks_are_one_clear_error(tmp_path, capsys):
    folder = save_segformer(tmp_path / "ade", ["road", "lamp post", "sky", "chandelier"])
    with pytest.raises(InputError, match=r"no class named 'lamp post', 'chandelier'"):
        Segmenter(folder, label_space="cityscapes")
    write_png(tmp_path / "frames" / "000000.png", random_images(1)[0])
    assert main(["pseudo-label", str(tmp_path / "frames"), str(tmp_path / "out"), "--segmenter", str(folder),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "lamp post" in err and "class_map" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_resume_keeps_finished_files_and_overwrite_relabels(tmp_path, segformer):
    images = random_images(4, 32, 48, seed=4)
    for i in range(4):
        write_png(tmp_path / "in" / "s" / f"{i:06d}.png", images[i])
    out = tmp_path / "out"
    seen = []

    class Counting(Segmenter):
        def predict(self, batch):
            seen.append(len(batch))
            return super().predict(batch)

    seg = Counting(segformer, label_space="cityscapes")
    jobs = folder_jobs(tmp_path / "in", out)
    first = pseudo_label(jobs, seg, "cityscapes", batch=3, progress=False)
    assert (first.written, first.skipped, seen) == (4, 0, [3, 1])
    inodes = {j.label: j.label.stat().st_ino for j in jobs}
    jobs[2].label.unlink()  # as if interrupted before this file
    seen.clear()
    again = pseudo_label(jobs, seg, "cityscapes", batch=3, progress=False)
    assert (again.written, again.skipped, seen) == (1, 3, [1])
    assert all(j.label.stat().st_ino == inodes[j.label] for j in jobs if j is not jobs[2])
    seen.clear()
    forced = pseudo_label(jobs, seg, "cityscapes", batch=3, overwrite=True, progress=False)
    assert (forced.written, forced.skipped, seen) == (4, 0, [3, 1])


def test_unreadable_images_are_reported_skipped_and_counted(tmp_path, segformer, capsys):
    images = random_images(3, 32, 48, seed=5)
    for i in range(3):
        write_png(tmp_path / "in" / "s" / "images" / f"{i:06d}.png", images[i])
    (tmp_path / "in" / "s" / "images" / "000001.png").write_bytes(b"not a png")
    assert main(["pseudo-label", str(tmp_path / "in"), str(tmp_path / "in"), "--segmenter", str(segformer),
                 "--batch", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 label maps" in out and "skipped 1 unreadable" in out and "000001.png" in out
    labels = sorted(p.name for p in (tmp_path / "in" / "s" / "labels").iterdir())
    assert labels == ["000000.png", "000002.png"]


def test_miou_uses_the_same_loader_and_agrees_with_the_pseudo_labels(tmp_path):
    from svsgan_core.metrics.evaluate import EvalOptions, Evaluator

    segformer = save_segformer(tmp_path / "reversed", CITYSCAPES[::-1], seed=6)  # by name != by position

    images = random_images(3, 32, 64, seed=6)
    for i in range(3):
        write_png(tmp_path / "in" / "s" / f"{i:06d}.png", images[i])
    jobs = folder_jobs(tmp_path / "in", tmp_path / "out")
    pseudo_label(jobs, Segmenter(segformer, label_space="cityscapes"), "cityscapes", progress=False)
    labels = np.stack([read_label(j.label) for j in jobs])

    options = EvalOptions(metrics=["miou"], segmenter=str(segformer), label_space="cityscapes")
    evaluator = Evaluator(options, log=lambda _: None)
    assert "miou" not in evaluator.skipped
    evaluator.add_sequence(images, labels=labels)
    assert evaluator.results()["miou"] == pytest.approx(100.0)  # percent, as the paper reports it

    other = Evaluator(options, log=lambda _: None)
    other.add_sequence(images, labels=np.where(labels == labels.flat[0], (labels.flat[0] + 1) % 19, labels))
    assert other.results()["miou"] < 90


def test_classes_outside_the_space_become_its_ignore_id_or_an_error():
    from svsgan_core.commands.pseudo_label import to_space

    out = np.array([[3, IGNORE_LABEL]])
    np.testing.assert_array_equal(to_space(out, get_label_space("kitti360"), IGNORE_LABEL), [[3, 0]])
    np.testing.assert_array_equal(to_space(out, get_label_space("cityscapes"), IGNORE_LABEL), [[3, 255]])
    with pytest.raises(InputError, match="no ignore id"):
        to_space(out, get_label_space("carla"), IGNORE_LABEL)
    with pytest.raises(InputError, match="outside label space"):
        to_space(np.array([[40]]), get_label_space("cityscapes"), IGNORE_LABEL)


def test_missing_folder_pieces_and_missing_transformers_are_clear(tmp_path, segformer, monkeypatch, capsys):
    write_png(tmp_path / "drive" / "seq" / "images" / "000000.png", random_images(1)[0])
    assert main(["pseudo-label", str(tmp_path / "drive"), str(tmp_path / "out"), "--segmenter",
                 str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err  # pseudo-label's own words: no mIoU, no DRN; the folder kind named first
    assert f"no segmentation network at '{tmp_path / 'nothing'}'" in err and "save_pretrained" in err, err
    assert "mIoU" not in err and "DRN" not in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        Segmenter(tmp_path / "empty")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(InputError, match=r"pip install 'svsgan\[segment\]'"):
        Segmenter(segformer)


def test_a_drive_recorded_with_rgb_only_becomes_a_trainable_dataset(tmp_path, segformer):
    """`svsgan extract` without --labels, then `svsgan pseudo-label` in place: the folder dataset loads it."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    frames = random_images(5, 32, 64, seed=7)  # multiples of 32: fed to the model unresized
    bag = tmp_path / "drive"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for i, frame in enumerate(frames):
            ns = 10**9 + i * 50_000_000 + (5 * 10**9 if i >= 3 else 0)  # a 5 s gap: a second sequence
            header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                              frame_id="cam")
            msg = t["sensor_msgs/msg/Image"](header=header, height=32, width=64, encoding="rgb8", is_bigendian=0,
                                             step=64 * 3, data=frame.reshape(-1))
            w.write(conn, ns, store.serialize_cdr(msg, conn.msgtype))
    data = tmp_path / "data"
    assert main(["extract", str(bag), str(data), "--rgb", "/camera/image_raw", "--no-progress"]) == 0
    with pytest.raises(InputError, match="label_space"):
        find_sequences("folder", data)  # no labels yet
    assert main(["pseudo-label", str(data), str(data), "--segmenter", str(segformer), "--no-progress"]) == 0
    sequences = find_sequences("folder", data)
    assert [(s.name, len(s), s.label_space) for s in sequences] == [("drive_000", 3, "cityscapes"),
                                                                    ("drive_001", 2, "cityscapes")]
    info = yaml.safe_load((data / "dataset.yaml").read_text())
    assert info["rgb_topic"] == "/camera/image_raw" and "labels" not in info  # no "none yet" left behind
    assert info["label_space"] == "cityscapes" and info["pseudo_labels"]["segmenter"] == str(segformer)
    labels = np.stack([read_label(f.label) for s in sequences for f in s.frames])
    np.testing.assert_array_equal(labels, raw_classes(segformer, frames))
    assert not list(data.rglob("*.tmp"))


def test_mask2former_queries_become_the_semantic_map_transformers_computes(tmp_path):
    """Mask-classification models (Mask2Former, OneFormer) go through the same loader and id mapping."""
    torch.manual_seed(8)
    backbone = transformers.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                       num_heads=[1, 1, 1, 1], window_size=2,
                                       out_features=["stage1", "stage2", "stage3", "stage4"])
    config = transformers.Mask2FormerConfig(
        backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32,
        dim_feedforward=32, decoder_layers=2, encoder_layers=1, num_queries=6, num_attention_heads=2,
        use_pretrained_backbone=False, id2label=dict(enumerate(CITYSCAPES)),
        label2id={n: i for i, n in enumerate(CITYSCAPES)})
    model = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    model.save_pretrained(tmp_path / "m2f")
    images = random_images(2, 64, 96, seed=8)
    labels = Segmenter(tmp_path / "m2f", label_space="kitti360").predict(images)

    x = imagenet_pixels(images)
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(x))
    h, w = out.masks_queries_logits.shape[-2:]
    semantic = transformers.Mask2FormerImageProcessor().post_process_semantic_segmentation(out, [(h, w)] * 2)
    expected = [cv2.resize(s.numpy().astype(np.int32), (96, 64), interpolation=cv2.INTER_NEAREST) for s in semantic]
    np.testing.assert_array_equal(labels, np.array(label_map_by_name(CITYSCAPES, "kitti360"))[np.stack(expected)])
