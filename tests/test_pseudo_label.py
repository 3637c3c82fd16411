"""`svsgan pseudo-label` and the one segmenter loader it shares with mIoU, on tiny random SegFormers.

The models are random-initialised and saved with save_pretrained into tmp folders: nothing is
downloaded. Random weights give arbitrary (but deterministic) classes, so the tests compare against
the model run directly through transformers rather than against fixed pictures.
"""
from __future__ import annotations

import json
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


def save_mask2former(folder, names, num_queries: int, seed: int = 8):
    """A Mask2Former on a 4-stage Swin of width 8, a few hundred thousand weights; id2label = `names`."""
    torch.manual_seed(seed)
    backbone = transformers.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                       num_heads=[1, 1, 1, 1], window_size=2,
                                       out_features=["stage1", "stage2", "stage3", "stage4"])
    config = transformers.Mask2FormerConfig(
        backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=32,
        dim_feedforward=32, decoder_layers=2, encoder_layers=1, num_queries=num_queries, num_attention_heads=2,
        use_pretrained_backbone=False, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    model.save_pretrained(folder)
    return model


def save_oneformer(folder, names, num_queries: int, seed: int = 0):
    """A OneFormer on the same width-8 Swin, plus the processor it needs to be told its task: an offline image
    processor (no class_info_file, so nothing fetches shi-labs/oneformer_demo) and a CLIP tokenizer on a
    byte-level vocabulary written here, its lengths those of the config; id2label = `names`."""
    from tokenizers.pre_tokenizers import ByteLevel

    torch.manual_seed(seed)
    backbone = transformers.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                       num_heads=[1, 1, 1, 1], window_size=2,
                                       out_features=["stage1", "stage2", "stage3", "stage4"])
    chars = sorted(ByteLevel.alphabet())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    # OneFormer feeds the raw token ids to an MLP; in byte order "semantic" and "panoptic" are near-equal
    # numbers, which a random net can hardly tell apart, so the ids are shuffled
    vocab = dict(zip(tokens, np.random.default_rng(seed).permutation(len(tokens)).tolist()))
    length = 24  # tokens of "the task is panoptic", one per character, fit
    config = transformers.OneFormerConfig(
        backbone_config=backbone, conv_dim=32, mask_dim=32, hidden_dim=32, encoder_feedforward_dim=32,
        dim_feedforward=32, encoder_layers=1, decoder_layers=2, query_dec_layers=1, num_attention_heads=2,
        num_queries=num_queries, task_seq_len=length, text_encoder_context_length=length, text_encoder_width=32,
        text_encoder_num_layers=1, text_encoder_vocab_size=len(vocab), use_pretrained_backbone=False,
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    model = transformers.OneFormerForUniversalSegmentation(config).eval()
    with torch.no_grad():  # spread the decoder, queries and classifier: else every query gives the same class
        decoder = model.model.transformer_module
        for p in decoder.parameters():
            if p.dim() > 1:
                p.mul_(3)
        decoder.queries_embedder.weight.mul_(30)
        decoder.decoder.class_embed.weight.mul_(10)
    model.save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: every character is a token
    tokenizer = transformers.CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    image_processor = transformers.OneFormerImageProcessor(num_labels=len(names))
    processor = transformers.OneFormerProcessor(image_processor, tokenizer, max_seq_length=length,
                                                task_seq_length=length)
    processor.save_pretrained(folder)
    return model


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
    model = save_mask2former(tmp_path / "m2f", CITYSCAPES, num_queries=6)
    images = random_images(2, 64, 96, seed=8)
    labels = Segmenter(tmp_path / "m2f", label_space="kitti360").predict(images)

    x = imagenet_pixels(images)
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(x))
    h, w = out.masks_queries_logits.shape[-2:]
    semantic = transformers.Mask2FormerImageProcessor().post_process_semantic_segmentation(out, [(h, w)] * 2)
    expected = [cv2.resize(s.numpy().astype(np.int32), (96, 64), interpolation=cv2.INTER_NEAREST) for s in semantic]
    np.testing.assert_array_equal(labels, np.array(label_map_by_name(CITYSCAPES, "kitti360"))[np.stack(expected)])


def oneformer_run(model, folder, images, task):
    """The OneFormer model called directly, told `task` by the processor saved beside it."""
    processor = transformers.OneFormerProcessor.from_pretrained(folder, local_files_only=True)
    tokens = processor(images=list(images), task_inputs=[task] * len(images), return_tensors="pt")["task_inputs"]
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(imagenet_pixels(images)), task_inputs=tokens)


def test_oneformer_is_told_the_semantic_task_and_gives_the_map_transformers_computes(tmp_path):
    """OneFormer reads its task from text tokens made by its processor: the labels are those of "the task is
    semantic" (a panoptic run gives another map), as transformers' own post-processing computes them."""
    model = save_oneformer(tmp_path / "oneformer", CITYSCAPES, num_queries=6)
    images = random_images(2, 64, 96, seed=8)
    labels = Segmenter(tmp_path / "oneformer", label_space="kitti360").predict(images)

    maps = {}
    for task in ("semantic", "panoptic"):
        out = oneformer_run(model, tmp_path / "oneformer", images, task)
        h, w = out.masks_queries_logits.shape[-2:]
        semantic = transformers.OneFormerImageProcessor().post_process_semantic_segmentation(out, [(h, w)] * 2)
        maps[task] = np.stack([cv2.resize(s.numpy().astype(np.int32), (96, 64), interpolation=cv2.INTER_NEAREST)
                               for s in semantic])
    np.testing.assert_array_equal(labels, np.array(label_map_by_name(CITYSCAPES, "kitti360"))[maps["semantic"]])
    assert len(np.unique(labels)) > 2
    assert (maps["panoptic"] != maps["semantic"]).mean() > 0.1  # so a mixed-up task cannot pass


def test_a_processor_folder_of_transformers_5_gives_its_own_normalisation(tmp_path):
    """transformers 5's processor.save_pretrained keeps the image processor's mean and std inside
    processor_config.json (no preprocessor_config.json): the loader reads them there, not ImageNet's."""
    from svsgan_core.metrics.miou import _load_transformers

    folder = tmp_path / "oneformer"
    save_oneformer(folder, ["road", "car", "person"], num_queries=3)
    spec_file = folder / "processor_config.json"
    spec = json.loads(spec_file.read_text())
    assert not (folder / "preprocessor_config.json").exists() and "image_mean" in spec["image_processor"]
    spec["image_processor"].update(image_mean=[0.25, 0.5, 0.75], image_std=[0.5, 0.25, 0.125])
    spec_file.write_text(json.dumps(spec))
    *_, mean, std = _load_transformers(str(folder), "cpu")
    assert (list(mean), list(std)) == ([0.25, 0.5, 0.75], [0.5, 0.25, 0.125])


def test_oneformer_without_its_tokenizer_is_one_clear_error(tmp_path, capsys):
    """Without its tokenizer OneFormer cannot be told its task: a folder with the weights only, or with the image
    processor but no tokenizer (transformers then makes an empty vocabulary that gives every task the same
    tokens, so the labels would be silently wrong) is a CheckpointError that says what to save."""
    model = save_oneformer(tmp_path / "full", ["road", "car", "person"], num_queries=3)
    model.save_pretrained(tmp_path / "weights_only")
    model.save_pretrained(tmp_path / "no_tokenizer")
    transformers.OneFormerImageProcessor(num_labels=3).save_pretrained(tmp_path / "no_tokenizer")
    for folder in ("weights_only", "no_tokenizer"):
        with pytest.raises(CheckpointError, match=r"needs its processor \(tokenizer\) saved beside it"):
            Segmenter(tmp_path / folder, label_space="cityscapes")
    write_png(tmp_path / "frames" / "000000.png", random_images(1)[0])
    assert main(["pseudo-label", str(tmp_path / "frames"), str(tmp_path / "out"), "--segmenter",
                 str(tmp_path / "no_tokenizer"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "processor.save_pretrained" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_oneformer_processor_of_another_task_length_is_one_clear_error(tmp_path):
    """A processor saved from another OneFormer makes task tokens of another length than this model reads:
    said when the folder is loaded, not a matrix-shape traceback in the first batch."""
    folder = tmp_path / "oneformer"
    save_oneformer(folder, ["road", "car", "person"], num_queries=3)
    spec_file = folder / "processor_config.json"
    spec = json.loads(spec_file.read_text())
    assert spec["task_seq_length"] == 24
    spec["task_seq_length"] = 30
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"makes 30 task tokens but the model reads 24"):
        Segmenter(folder, label_space="cityscapes")


# -- instance maps from panoptic segmenters (issue 24) ---------------------------------------------------

PANOPTIC_NAMES = ["road", "car", "person", "sky", "building"]  # ids 0..4; 5 is "no object"


def crafted_queries(h=8, w=12):
    """Class and mask logits of seven queries over an h x w grid, built so each rule of panoptic inference
    decides one of them: two cars side by side and a person are objects; road is stuff; a low score, a
    "no object" and a mask that mostly loses its pixels to a car are dropped."""
    big = 12.0

    def cls(k, score_logit=big):
        row = np.zeros(6, np.float32)
        row[k] = score_logit
        return row

    def mask(cols=None, rows=None):
        m = np.full((h, w), -big, np.float32)
        m[slice(*rows) if rows else slice(None), slice(*cols) if cols else slice(None)] = big
        return m

    queries = [
        (cls(1), mask(cols=(0, 4), rows=(0, 6))),  # car
        (cls(1), mask(cols=(4, 8), rows=(0, 6))),  # the car parked against it
        (cls(0), mask(rows=(6, 8))),  # road: stuff
        (cls(2, 0.8), mask(cols=(8, 12), rows=(0, 6))),  # a person, but not sure (score ~0.31)
        (cls(5), mask(cols=(8, 12), rows=(0, 3))),  # "no object"
        (cls(2, big - 1), mask(cols=(10, 12), rows=(0, 6))),  # a person half behind the next: keeps 6 of 12 pixels
        (cls(2), mask(cols=(8, 11), rows=(0, 6))),  # a person
    ]
    return np.stack([q[0] for q in queries]), np.stack([q[1] for q in queries])


def test_object_segments_follow_mask2formers_panoptic_inference():
    from transformers.models.mask2former.image_processing_pil_mask2former import (
        compute_segments,
        remove_low_and_no_objects,
    )

    from svsgan_core.metrics.miou import MASK_THRESHOLD, OBJECT_THRESHOLD, OVERLAP_THRESHOLD, _object_segments

    class_logits, mask_logits = crafted_queries()
    things = {1, 2}
    ours = _object_segments(class_logits, mask_logits, lambda c: c in things)
    scores, labels = torch.from_numpy(class_logits).softmax(-1).max(-1)
    masks, scores, labels = remove_low_and_no_objects(torch.from_numpy(mask_logits).sigmoid(), scores, labels,
                                                      OBJECT_THRESHOLD, class_logits.shape[-1] - 1)
    segmentation, info = compute_segments(masks, scores, labels, MASK_THRESHOLD, OVERLAP_THRESHOLD,
                                          {0, 3, 4}, None)
    objects = [s["id"] for s in info if s["label_id"] in things]
    expected = np.zeros_like(ours)
    for k, segment in enumerate(objects, start=1):
        expected[segmentation.numpy() == segment] = k
    np.testing.assert_array_equal(ours, expected)
    assert ours.max() == 3  # the two cars and the sure person; road is stuff, the rest dropped
    assert len(np.unique(ours[:6, :8])) == 2 and (ours[:6, :4] != ours[:6, 4:8]).all()  # the cars stay apart


def test_object_segments_take_mask_logits_far_beyond_float32_exp_range():
    """Real panoptic heads emit mask logits in the hundreds; a sigmoid through exp overflowed (a
    RuntimeWarning per image) where the same masks saturated should give the same segments."""
    import warnings

    from svsgan_core.metrics.miou import _object_segments

    class_logits, mask_logits = crafted_queries()  # mask logits +-12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loud = _object_segments(class_logits, mask_logits * 20.0, lambda c: c in {1, 2})
    np.testing.assert_array_equal(loud, _object_segments(class_logits, mask_logits, lambda c: c in {1, 2}))

@pytest.fixture(scope="module")
def mask2former(tmp_path_factory):
    folder = tmp_path_factory.mktemp("m2f_panoptic")
    save_mask2former(folder, PANOPTIC_NAMES, num_queries=7)
    return folder


def crafted_panoptic(segmenter):
    """The segmenter's network, but its queries those of crafted_queries (scaled to its mask grid)."""
    class_logits, mask_logits = crafted_queries()

    def run(x):
        h, w = x.shape[2] // 4, x.shape[3] // 4  # Mask2Former's masks come at a quarter of the input
        masks = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in mask_logits])
        return np.repeat(class_logits[None], len(x), 0), np.repeat(masks[None], len(x), 0)
    segmenter._panoptic = run
    return segmenter


def test_panoptic_pseudo_labels_write_instance_maps_the_datasets_read(tmp_path, mask2former, capsys):
    from svsgan_core.data.datasets import build_dataset
    from svsgan_core.data.layouts import read_instances

    images = random_images(3, 64, 96, seed=2)
    for i in range(3):
        write_png(tmp_path / "drive" / "seq_a" / "images" / f"{i:06d}.png", images[i])
    segmenter = crafted_panoptic(Segmenter(mask2former, label_space="cityscapes"))
    assert segmenter.panoptic
    jobs = folder_jobs(tmp_path / "drive", tmp_path / "out", instances=True)
    result = pseudo_label(jobs, segmenter, "cityscapes", batch=2, progress=False)
    assert (result.written, result.instances) == (3, 3)
    segments = segmenter.predict_segments(images)
    assert segments.max() == 3 and segments.shape == (3, 64, 96)
    for job, seg in zip(jobs, segments):
        labels, ids = read_label(job.label), read_instances(job.instance)
        np.testing.assert_array_equal(ids, np.where(seg > 0, labels.astype(np.int32) * 1000 + seg, labels))
        assert not set(np.unique(ids[seg == 1])) & set(np.unique(ids[seg == 2]))  # the two cars stay apart
    (tmp_path / "out" / "dataset.yaml").write_text("label_space: cityscapes\n")
    ds = build_dataset("folder", tmp_path / "out", size=(64, 96), seq_len=3)
    assert ds.instance_summary == "instance maps: all 3 frames"

    # resume: a missing instance map is made on the kept labels, nothing else is rewritten
    jobs[1].instance.unlink()
    kept = jobs[1].label.stat().st_mtime_ns
    again = pseudo_label(jobs, segmenter, "cityscapes", batch=2, progress=False)
    assert (again.written, again.instances, again.skipped) == (0, 1, 2)
    assert jobs[1].label.stat().st_mtime_ns == kept and jobs[1].instance.is_file()


def test_instances_auto_on_off_and_layout_paths(tmp_path, mask2former, segformer, capsys):
    from svsgan_core.commands.pseudo_label import cityscapes_jobs, kitti360_jobs

    images = random_images(2, 32, 64, seed=3)
    for i in range(2):
        write_png(tmp_path / "drive" / "s" / "images" / f"{i:06d}.png", images[i])
    base = ["pseudo-label", str(tmp_path / "drive"), str(tmp_path / "out"), "--no-progress", "--device", "cpu"]
    assert main(base + ["--segmenter", str(segformer), "--instances", "on"]) == 1
    assert "needs a panoptic segmenter" in capsys.readouterr().err
    assert main(base + ["--segmenter", str(segformer)]) == 0  # auto: a per-pixel model writes labels only
    assert not (tmp_path / "out" / "s" / "instances").exists()
    assert main(base + ["--segmenter", str(mask2former), "--overwrite"]) == 0  # auto: panoptic, so instance maps too
    assert "and 2 instance maps" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out" / "s" / "instances").iterdir()) == ["000000.png", "000001.png"]
    assert yaml.safe_load((tmp_path / "out" / "dataset.yaml").read_text())["pseudo_labels"]["instances"] is True

    write_png(tmp_path / "cs" / "leftImg8bit_sequence" / "val" / "ulm" / "ulm_000001_000002_leftImg8bit.png", images[0])
    [job] = cityscapes_jobs(tmp_path / "cs", tmp_path / "cs" / "pseudo_labels_sequence", None, "labelTrainIds", True)
    assert job.instance == tmp_path / "cs" / "pseudo_labels_sequence" / "val" / "ulm" / "ulm_000001_000002_instanceIds.png"
    write_png(tmp_path / "k" / "data_2d_raw" / "d" / "image_00" / "data_rect" / "0000000007.png", images[0])
    [job] = kitti360_jobs(tmp_path / "k", tmp_path / "k" / "data_2d_semantics" / "train", "image_00", True)
    assert job.instance == tmp_path / "k" / "data_2d_semantics" / "train" / "d" / "image_00" / "instance" / "0000000007.png"


def test_oneformer_instance_maps_come_from_its_panoptic_task(tmp_path, capsys):
    """`--instances on` with a OneFormer folder: its objects come from the same network told "the task is
    panoptic", and the maps written hold transformers' panoptic segments of that run (things, numbered 1, 2, ...)."""
    from svsgan_core.data.labels import thing_ids
    from svsgan_core.data.layouts import read_instances
    from svsgan_core.metrics.miou import MASK_THRESHOLD, OBJECT_THRESHOLD, OVERLAP_THRESHOLD

    model = save_oneformer(tmp_path / "oneformer", PANOPTIC_NAMES, num_queries=7)
    images = random_images(2, 64, 96, seed=2)
    for i in range(2):
        write_png(tmp_path / "drive" / "s" / "images" / f"{i:06d}.png", images[i])
    assert main(["pseudo-label", str(tmp_path / "drive"), str(tmp_path / "out"), "--segmenter",
                 str(tmp_path / "oneformer"), "--instances", "on", "--no-progress", "--device", "cpu"]) == 0
    assert "and 2 instance maps" in capsys.readouterr().out

    space = np.array(label_map_by_name(PANOPTIC_NAMES, "cityscapes"))
    things = {k for k, v in enumerate(space) if v in thing_ids("cityscapes")}

    def objects(task):
        out = oneformer_run(model, tmp_path / "oneformer", images, task)
        found = transformers.OneFormerImageProcessor().post_process_panoptic_segmentation(
            out, OBJECT_THRESHOLD, MASK_THRESHOLD, OVERLAP_THRESHOLD, label_ids_to_fuse=set(range(len(PANOPTIC_NAMES))) - things)
        maps = []
        for image in found:
            segments = np.zeros(image["segmentation"].shape, np.int32)
            for k, s in enumerate([s for s in image["segments_info"] if s["label_id"] in things], start=1):
                segments[image["segmentation"].numpy() == s["id"]] = k
            maps.append(cv2.resize(segments, (96, 64), interpolation=cv2.INTER_NEAREST))
        return np.stack(maps)

    expected = objects("panoptic")
    assert expected.max() > 0 and (expected != objects("semantic")).mean() > 0.05  # so a mixed-up task cannot pass
    for i, segments in enumerate(expected):
        labels = read_label(tmp_path / "out" / "s" / "labels" / f"{i:06d}.png")
        ids = read_instances(tmp_path / "out" / "s" / "instances" / f"{i:06d}.png")
        np.testing.assert_array_equal(ids, np.where(segments > 0, labels.astype(np.int32) * 1000 + segments, labels))
