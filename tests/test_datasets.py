"""Clip datasets over the real on-disk layouts, written tiny by the tests themselves."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from svsgan_core.cli import main as svsgan
from svsgan_core.data.datasets import (
    CarlaRecordingDataset,
    CityscapesSequenceDataset,
    Kitti360Dataset,
    SequenceFolderDataset,
    build_dataset,
)
from svsgan_core.data.flow import save_flow
from svsgan_core.data.layouts import write_dataset_info, write_frame, write_image, write_label
from svsgan_core.errors import InputError
from svsgan_core.data.labels import get_label_space

CITYSCAPES = get_label_space("cityscapes")
H, W = 32, 64


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    args = ["make-synthetic", str(root), "--sequences", "2", "--frames", "6", "--size", f"{W}x{H}", "--seed", "5",
            "--supersample", "1"]
    assert svsgan(args) == 0
    return root


def _frames(n: int, seed: int = 0, h: int = H, w: int = W) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0) for _ in range(n)]


def _stripes(ids: list[int], h: int = H, w: int = W) -> np.ndarray:
    """Vertical stripes of the given ids, so a horizontal flip is visible in the labels too."""
    return np.array(ids, np.uint8)[np.arange(w) * len(ids) // w][None].repeat(h, 0)


# --------------------------------------------------------------------------------------------------
# make-synthetic and the generic folder layout


def test_make_synthetic_writes_the_generic_layout(synthetic_root, capsys):
    import yaml

    info = yaml.safe_load((synthetic_root / "dataset.yaml").read_text())
    assert info["label_space"] == "cityscapes" and info["frames"] == 6 and len(info["sequences"]) == 2
    for name in ("seq_0000", "seq_0001"):
        assert sorted(p.name for p in (synthetic_root / name / "images").iterdir())[0] == "000000.png"
        assert len(list((synthetic_root / name / "labels").iterdir())) == 6
        assert sorted(p.name for p in (synthetic_root / name / "flow").iterdir())[0] == "000001.npz"
        assert len(list((synthetic_root / name / "instances").iterdir())) == 6
    image = cv2.imread(str(synthetic_root / "seq_0000" / "images" / "000000.png"), cv2.IMREAD_UNCHANGED)
    label = cv2.imread(str(synthetic_root / "seq_0000" / "labels" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (H, W, 3) and label.shape == (H, W) and label.dtype == np.uint8
    assert SequenceFolderDataset(synthetic_root, size=(H, W), seq_len=2).instance_summary == \
        "instance maps: all 12 frames"
    assert svsgan(["make-synthetic", str(synthetic_root), "--sequences", "1", "--frames", "2", "--size", "64x32"]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_folder_dataset_item(synthetic_root):
    ds = SequenceFolderDataset(synthetic_root, size=(24, 40), seq_len=4, with_flow=True)
    assert len(ds) == 2
    item = ds[1]
    assert item["images"].shape == (4, 3, 24, 40) and item["images"].dtype == torch.float32
    assert -1.0 <= item["images"].min() and item["images"].max() <= 1.0
    assert item["labels"].shape == (4, 24, 40) and item["labels"].dtype == torch.int64
    assert set(item["labels"].unique().tolist()) <= set(CITYSCAPES.valid_ids)
    assert item["flow"].shape == (4, 2, 24, 40) and item["flow_conf"].shape == (4, 1, 24, 40)
    assert not item["flow"][0].any() and not item["flow_conf"][0].any()
    assert item["flow"][1:].abs().mean() > 0 and 0 <= item["flow_conf"].min() and item["flow_conf"].max() <= 1
    assert item["sequence"] == "seq_0001"
    start = int(item["frame_indices"][0])
    assert item["frame_indices"].tolist() == list(range(start, start + 4))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["images"].shape == (2, 4, 3, 24, 40) and batch["sequence"] == ["seq_0000", "seq_0001"]


def test_sequence_length_grows_and_segments_cut_long_sequences(synthetic_root):
    ds = SequenceFolderDataset(synthetic_root, size=(16, 32), seq_len=2)
    ds.set_sequence_length(6)
    assert len(ds) == 2 and ds[0]["images"].shape[0] == 6
    with pytest.raises(InputError, match="no sequence has 7 frames"):
        ds.set_sequence_length(7)
    cut = SequenceFolderDataset(synthetic_root, size=(16, 32), seq_len=3, segment_length=3)
    assert len(cut) == 4  # two 3-frame segments per 6-frame sequence
    cut.set_sequence_length(4)
    assert len(cut) == 2  # a clip may run past its segment, not past its sequence


def test_same_seed_same_clips_new_epoch_new_augmentation(synthetic_root):
    kwargs = dict(size=(16, 24), seq_len=3, augment=True, seed=3)
    a, b = SequenceFolderDataset(synthetic_root, **kwargs), SequenceFolderDataset(synthetic_root, **kwargs)
    for i in range(len(a)):
        assert torch.equal(a[i]["images"], b[i]["images"]) and torch.equal(a[i]["labels"], b[i]["labels"])
    before = [a[i]["images"] for i in range(len(a))]
    changed = False
    for epoch in range(1, 5):
        a.set_epoch(epoch)
        changed |= any(not torch.equal(a[i]["images"], before[i]) for i in range(len(a)))
    assert changed


def test_flip_is_the_same_for_every_frame_and_flips_flow(synthetic_root):
    common = dict(size=(24, 48), seq_len=4, with_flow=True, random_clips=False)
    plain = SequenceFolderDataset(synthetic_root, **common)
    flipping = SequenceFolderDataset(synthetic_root, augment={"flip": True, "crop": False, "scale": [1, 1]}, **common)
    outcomes = set()
    for epoch in range(8):
        flipping.set_epoch(epoch)
        for i in range(len(plain)):
            a, b = flipping[i], plain[i]
            flipped = [torch.equal(a["images"][t], b["images"][t].flip(-1)) for t in range(4)]
            same = [torch.equal(a["images"][t], b["images"][t]) for t in range(4)]
            assert all(flipped) or all(same)
            if all(flipped):
                assert torch.equal(a["labels"], b["labels"].flip(-1))
                assert torch.allclose(a["flow"][:, 0], -b["flow"][:, 0].flip(-1))
                assert torch.allclose(a["flow"][:, 1], b["flow"][:, 1].flip(-1))
            else:
                assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["flow"], b["flow"])
            outcomes.add(all(flipped))
    assert outcomes == {True, False}


def test_crop_is_the_same_for_every_frame(synthetic_root):
    """64x32 frames into 24x24 clips: resized to cover (48x24), then one random 24-wide window for all frames."""
    full = SequenceFolderDataset(synthetic_root, size=(24, 48), seq_len=5, with_flow=True, random_clips=False)
    cropping = SequenceFolderDataset(synthetic_root, size=(24, 24), seq_len=5, with_flow=True, random_clips=False,
                                     augment={"crop": True, "flip": False, "scale": [1, 1]})
    offsets = set()
    for epoch in range(6):
        cropping.set_epoch(epoch)
        a, b = cropping[0], full[0]
        x0 = next(x for x in range(25) if torch.equal(a["images"][0], b["images"][0][..., x: x + 24]))
        for key in ("images", "labels", "flow", "flow_conf"):
            assert torch.equal(a[key], b[key][..., x0: x0 + 24]), key
        offsets.add(x0)
    assert len(offsets) > 1


def test_scale_augmentation_keeps_labels_on_their_pixels(synthetic_root):
    ds = SequenceFolderDataset(synthetic_root, size=(32, 64), seq_len=3, augment={"scale": [1.3, 1.6]})
    item = ds[0]
    plain = SequenceFolderDataset(synthetic_root, size=(32, 64), seq_len=3)[0]
    assert item["images"].shape == plain["images"].shape
    assert not torch.equal(item["labels"], plain["labels"])  # zoomed in
    sky = item["labels"] == CITYSCAPES.index("sky")
    road = item["labels"] == CITYSCAPES.index("road")
    brightness = item["images"].mean(1)
    if sky.any() and road.any():
        assert brightness[sky].mean() > brightness[road].mean()


# --------------------------------------------------------------------------------------------------
# CARLA recordings


def test_carla_tags_are_mapped_to_the_model_space(tmp_path):
    tags = {"road": 1, "road line": 24, "car": 14, "unlabeled": 0, "sky": 11, "pedestrian": 12}
    images = _frames(3)
    for i, image in enumerate(images):
        write_frame(tmp_path, "town10_run0", i, image, _stripes(list(tags.values())))
    write_dataset_info(tmp_path, "carla", carla_version="0.9.16")
    item = CarlaRecordingDataset(tmp_path, size=(H, W), seq_len=3)[0]
    expected = [CITYSCAPES.index(n) for n in ("road", "road", "car")] + [255] + \
        [CITYSCAPES.index(n) for n in ("sky", "person")]
    assert sorted(item["labels"].unique().tolist()) == sorted(set(expected))
    np.testing.assert_array_equal(item["labels"][0].numpy(), _stripes(expected).astype(np.int64))
    assert isinstance(build_dataset("carla", tmp_path, size=(H, W), seq_len=2), CarlaRecordingDataset)


def test_carla_loader_refuses_other_label_spaces(synthetic_root):
    with pytest.raises(InputError, match="label_space 'cityscapes'"):
        CarlaRecordingDataset(synthetic_root, size=(H, W), seq_len=2)


def test_legacy_carla_tags(tmp_path):
    legacy = get_label_space("carla_legacy")
    ids = [legacy.index(n) for n in ("road", "vehicles", "road line")]
    for i, image in enumerate(_frames(2)):
        write_frame(tmp_path, "old", i, image, _stripes(ids))
    write_dataset_info(tmp_path, "carla_legacy")
    labels = CarlaRecordingDataset(tmp_path, size=(H, W), seq_len=2)[0]["labels"]
    assert sorted(labels.unique().tolist()) == [CITYSCAPES.index("road"), CITYSCAPES.index("car")]


# --------------------------------------------------------------------------------------------------
# Cityscapes sequence


def _cityscapes(root: Path, snippets: dict[str, range], label_ids: list[int], suffix: str = "labelTrainIds") -> None:
    for k, (snippet, frames) in enumerate(snippets.items()):
        city, seq = snippet.split("_")
        images = _frames(len(frames), seed=k)
        for image, frame in zip(images, frames):
            stem = f"{city}_{seq}_{frame:06d}"
            write_image(root / "leftImg8bit_sequence" / "train" / city / f"{stem}_leftImg8bit.png", image)
            write_label(root / "pseudo_labels_sequence" / "train" / city / f"{stem}_{suffix}.png", _stripes(label_ids))


def test_cityscapes_sequence_snippets(tmp_path):
    _cityscapes(tmp_path, {"aachen_000000": range(17, 22), "aachen_000001": range(100, 105)}, [0, 13, 255, 10])
    ds = CityscapesSequenceDataset(tmp_path, size=(16, 32), seq_len=5)
    assert [s.name for s in ds.sequences] == ["train/aachen_000000_000017", "train/aachen_000001_000100"]
    assert len(ds) == 2
    item = ds[0]
    assert item["images"].shape == (5, 3, 16, 32)
    assert sorted(item["labels"].unique().tolist()) == [0, 10, 13, 255]  # ignore stays 255
    assert svsgan(["prepare-flow", str(tmp_path), "--layout", "cityscapes", "--preset", "ultrafast"]) == 0
    assert (tmp_path / "flow_sequence" / "train" / "aachen" / "aachen_000000_000018_flow.npz").is_file()
    flow_item = CityscapesSequenceDataset(tmp_path, size=(16, 32), seq_len=5, with_flow=True)[1]
    assert flow_item["flow"].shape == (5, 2, 16, 32) and not flow_item["flow"][0].any()


def test_cityscapes_label_ids_are_mapped_to_train_ids(tmp_path):
    ids = get_label_space("cityscapes_ids")
    _cityscapes(tmp_path, {"bonn_000004": range(0, 3)}, [ids.index("road"), ids.index("car"), 0], suffix="labelIds")
    ds = CityscapesSequenceDataset(tmp_path, size=(H, W), seq_len=3, label_suffix="labelIds",
                                   label_source_space="cityscapes_ids")
    assert sorted(ds[0]["labels"].unique().tolist()) == [0, 13, 255]


# --------------------------------------------------------------------------------------------------
# KITTI-360


DRIVE = "2013_05_28_drive_0000_sync"


def _kitti360(root: Path, drive: str, frames: list[int], label_ids: list[int]) -> None:
    for k, frame in enumerate(frames):
        write_image(root / "data_2d_raw" / drive / "image_00" / "data_rect" / f"{frame:010d}.png", _frames(1, k)[0])
        write_label(root / "data_2d_semantics" / "train" / drive / "image_00" / "semantic" / f"{frame:010d}.png",
                    _stripes(label_ids))


def test_kitti360_runs_of_labelled_frames(tmp_path):
    k360 = get_label_space("kitti360")
    names = ("road", "car", "garage", "smallpole", "unlabeled", "lamp")
    _kitti360(tmp_path, DRIVE, [10, 11, 12, 14, 15], [k360.index(n) for n in names])
    ds = Kitti360Dataset(tmp_path, size=(H, W), seq_len=2)
    assert [s.name for s in ds.sequences] == [f"{DRIVE}/0000000010", f"{DRIVE}/0000000014"]
    labels = ds[0]["labels"]
    assert sorted(labels.unique().tolist()) == sorted({0, 13, 2, 5, 255})
    ds.set_sequence_length(3)
    assert len(ds) == 1


def test_kitti360_split_file_and_long_drives(tmp_path):
    _kitti360(tmp_path, DRIVE, list(range(0, 12)), [7])
    listed = "".join(f"data_2d_raw/{DRIVE}/image_00/data_rect/{f:010d}.png "
                     f"data_2d_semantics/train/{DRIVE}/image_00/semantic/{f:010d}.png\n" for f in range(0, 8))
    (tmp_path / "data_2d_semantics" / "train" / "2013_05_28_drive_train_frames.txt").write_text(listed)
    assert len(Kitti360Dataset(tmp_path, size=(H, W), seq_len=8, split="train").sequences[0]) == 8
    clips = Kitti360Dataset(tmp_path, size=(H, W), seq_len=2, segment_length=5)
    assert len(clips) == 3  # the 12-frame drive gives clips starting in [0, 5), [5, 10) and [10, 11)
    clips.set_sequence_length(3)
    assert len(clips) == 2  # frames 10 and 11 are too few for a 3-frame clip
    starts = set()
    for epoch in range(6):
        clips.set_epoch(epoch)
        starts |= {int(clips[i]["frame_indices"][0]) for i in range(len(clips))}
    assert starts <= set(range(0, 10)) and len(starts) > 2
    with pytest.raises(InputError, match="val_frames.txt"):
        Kitti360Dataset(tmp_path, size=(H, W), seq_len=3, split="val")


# --------------------------------------------------------------------------------------------------
# Clear errors that name the file


def _folder(root: Path, n: int = 3, image_size=(H, W), label_size=(H, W)) -> Path:
    for i, image in enumerate(_frames(n, h=image_size[0], w=image_size[1])):
        write_image(root / "s" / "images" / f"{i:06d}.png", image)
        write_label(root / "s" / "labels" / f"{i:06d}.png", np.zeros(label_size, np.uint8))
    write_dataset_info(root, "cityscapes")
    return root


@pytest.mark.parametrize("cls, kwargs", [
    (SequenceFolderDataset, {}), (CarlaRecordingDataset, {}), (CityscapesSequenceDataset, {}), (Kitti360Dataset, {}),
])
def test_missing_dataset_path(tmp_path, cls, kwargs):
    with pytest.raises(InputError, match="does not exist") as err:
        cls(tmp_path / "nowhere", size=(H, W), seq_len=2, **kwargs)
    assert str(tmp_path / "nowhere") in str(err.value)


def test_no_sequences_and_empty_sequence(tmp_path):
    write_dataset_info(tmp_path, "cityscapes")
    with pytest.raises(InputError, match="no sequences found"):
        SequenceFolderDataset(tmp_path, size=(H, W), seq_len=2)
    (tmp_path / "empty_seq" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="is empty") as err:
        SequenceFolderDataset(tmp_path, size=(H, W), seq_len=2)
    assert str(tmp_path / "empty_seq" / "images") in str(err.value)


def test_missing_dataset_yaml(tmp_path):
    _folder(tmp_path)
    (tmp_path / "dataset.yaml").unlink()
    with pytest.raises(InputError, match="dataset.yaml is missing"):
        SequenceFolderDataset(tmp_path, size=(H, W), seq_len=2)


def test_missing_label_names_the_image(tmp_path):
    _folder(tmp_path)
    (tmp_path / "s" / "labels" / "000001.png").unlink()
    with pytest.raises(InputError, match="has no label map") as err:
        SequenceFolderDataset(tmp_path, size=(H, W), seq_len=2)
    assert "000001.png" in str(err.value)


def test_label_image_size_mismatch_names_the_files(tmp_path):
    _folder(tmp_path, label_size=(H // 2, W))
    ds = SequenceFolderDataset(tmp_path, size=(H, W), seq_len=3)
    with pytest.raises(InputError, match="label map .*000000.png is 64x16 but its image .*000000.png is 64x32"):
        ds[0]


def test_corrupt_image_names_the_file(tmp_path):
    _folder(tmp_path)
    broken = tmp_path / "s" / "images" / "000002.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    ds = SequenceFolderDataset(tmp_path, size=(H, W), seq_len=3)
    with pytest.raises(InputError, match="cannot decode image") as err:
        ds[0]
    assert str(broken) in str(err.value)


def test_label_ids_outside_the_space_name_the_file(tmp_path):
    _folder(tmp_path)
    write_label(tmp_path / "s" / "labels" / "000000.png", np.full((H, W), 40, np.uint8))
    with pytest.raises(InputError, match="000000.png.*outside label space 'cityscapes'"):
        SequenceFolderDataset(tmp_path, size=(H, W), seq_len=2, random_clips=False)[0]


def test_missing_flow_says_how_to_make_it(tmp_path):
    _folder(tmp_path)
    ds = SequenceFolderDataset(tmp_path, size=(H, W), seq_len=2, with_flow=True)
    with pytest.raises(InputError, match="svsgan prepare-flow"):
        ds[0]
    save_flow(tmp_path / "s" / "flow" / "000001.npz", np.zeros((H, W, 2), np.float32), np.ones((H, W), np.float32))
    save_flow(tmp_path / "s" / "flow" / "000002.npz", np.zeros((H, W, 2), np.float32), np.ones((H, W), np.float32))
    assert ds[0]["flow"].shape == (2, 2, H, W)


def test_build_dataset_rejects_unknown_kinds_and_options(synthetic_root):
    with pytest.raises(InputError, match="unknown dataset kind"):
        build_dataset("imagenet", synthetic_root, size=(H, W), seq_len=2)
    with pytest.raises(InputError, match="no option"):
        build_dataset("folder", synthetic_root, size=(H, W), seq_len=2, colour="blue")
    ds = build_dataset("synthetic", synthetic_root, size=(H, W), seq_len=2, augment={"flip": True}, seed=1)
    assert isinstance(ds, SequenceFolderDataset) and ds.augment.flip and ds.augment.scale == (1.0, 1.25)


# --------------------------------------------------------------------------------------------------
# vid2vid (train_A labels, train_B frames, train_inst instances)


def _vid2vid(root: Path, sequences: dict[str, int], label_ids: list[int], split: str = "train") -> None:
    """vid2vid's Cityscapes example layout: labelIds PNGs, JPEG frames, file names matching."""
    for name, frames in sequences.items():
        for k, image in enumerate(_frames(frames, seed=len(name) + frames)):
            stem = f"aachen_{name[-2:]}_{k:06d}_leftImg8bit"
            (root / f"{split}_B" / name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / f"{split}_B" / name / f"{stem}.jpg"), image)
            write_label(root / f"{split}_A" / name / f"{stem}.png", _stripes(label_ids))
            write_label(root / f"{split}_inst" / name / f"{stem}.png", np.full((H, W), 255, np.uint8))


def test_vid2vid_layout_reads_label_ids_and_selects_sequences(tmp_path):
    from svsgan_core.data.layouts import detect_layout, find_sequences

    ids = get_label_space("cityscapes_ids")
    _vid2vid(tmp_path, {"seq0000": 4, "seq0001": 3}, [ids.index("road"), ids.index("car"), ids.index("ego vehicle")])
    assert detect_layout(tmp_path) == "vid2vid"
    sequences = find_sequences("vid2vid", tmp_path)
    assert [(s.name, len(s)) for s in sequences] == [("seq0000", 4), ("seq0001", 3)]
    assert sequences[0].frames[1].image.name == "aachen_00_000001_leftImg8bit.jpg"
    held_out = build_dataset("vid2vid", tmp_path, size=(16, 32), seq_len=3, sequence_names=["seq0001"])
    assert [s.name for s in held_out.sequences] == ["seq0001"]
    item = held_out[0]
    assert item["images"].shape == (3, 3, 16, 32)
    # labelIds road 7 / car 26 / ego vehicle 1 -> trainIds road 0 / car 13 / ignore 255
    assert sorted(item["labels"].unique().tolist()) == [0, 13, 255]
    with pytest.raises(InputError, match="no sequence named 'seq0009'.*seq0000, seq0001"):
        find_sequences("vid2vid", tmp_path, ["seq0009"])
    with pytest.raises(InputError, match="split 'test'.*splits here: train"):
        find_sequences("vid2vid", tmp_path, split="test")


def test_vid2vid_flow_goes_where_flow_root_says_and_missing_frames_are_named(tmp_path):
    _vid2vid(tmp_path / "data", {"seq0000": 3}, [7, 26])
    flow_root = tmp_path / "flow"  # the data folder may be read-only
    assert svsgan(["prepare-flow", str(tmp_path / "data"), "--preset", "ultrafast", "--flow-root", str(flow_root),
                   "--sequences", "seq0000"]) == 0
    assert sorted(p.name for p in (flow_root / "seq0000").iterdir()) == [
        "aachen_00_000001_leftImg8bit.npz", "aachen_00_000002_leftImg8bit.npz"]
    item = build_dataset("vid2vid", tmp_path / "data", size=(16, 32), seq_len=3, with_flow=True,
                         flow_root=str(flow_root))[0]
    assert item["flow"].shape == (3, 2, 16, 32) and not item["flow"][0].any()
    (tmp_path / "data" / "train_B" / "seq0000" / "aachen_00_000002_leftImg8bit.jpg").unlink()
    with pytest.raises(InputError, match="aachen_00_000002_leftImg8bit.png has no image"):
        build_dataset("vid2vid", tmp_path / "data", size=(16, 32), seq_len=3)
