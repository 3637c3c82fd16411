"""Instance maps in the datasets: every layout finds them, the files round-trip, and a clip's `edges`
are the boundary map of its ids on the output grid (after resize, crop and flip), falling back to the
label map's edges where a frame has no instance map."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from svsgan_core.cli import main as svsgan
from svsgan_core.data.datasets import build_dataset
from svsgan_core.data.instances import boundary_map, carla_instance_key, compact_ids
from svsgan_core.data.labels import get_label_space
from svsgan_core.data.layouts import (
    find_sequences,
    read_instances,
    write_dataset_info,
    write_frame,
    write_image,
    write_instances,
    write_label,
)
from svsgan_core.errors import InputError
from svsgan_core.io.encoding import decode_instances

CITYSCAPES = get_label_space("cityscapes")
CAR, ROAD = CITYSCAPES.index("car"), CITYSCAPES.index("road")
H, W = 32, 64


def two_cars(h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    """Road with two cars parked bumper to bumper: one car-coloured blob in the labels, two ids in the
    instance map (left car 1, right car 2, stuff 0); they touch at column w // 2. Not mirror-symmetric,
    so a flip shows."""
    labels = np.full((h, w), ROAD, np.uint8)
    labels[h // 4: 3 * h // 4, w // 8: 3 * w // 4] = CAR
    ids = np.zeros((h, w), np.uint16)
    ids[h // 4: 3 * h // 4, w // 8: w // 2] = 1
    ids[h // 4: 3 * h // 4, w // 2: 3 * w // 4] = 2
    return labels, ids


def frames(n: int, seed: int = 0, h: int = H, w: int = W) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def parked(tmp_path) -> Path:
    """A folder dataset of 3 frames: frames 0 and 1 have instance maps, frame 2 has none."""
    labels, ids = two_cars()
    for i, image in enumerate(frames(3)):
        write_frame(tmp_path, "street", i, image, labels, ids if i < 2 else None)
    write_dataset_info(tmp_path, "cityscapes")
    return tmp_path


# -- files ---------------------------------------------------------------------------------------------

def test_instance_files_round_trip_16_bit_colour_and_compacted(tmp_path):
    cityscapes_style = np.array([[26000, 26001, 7], [24000, 26000, 11]], np.int32)  # labelId * 1000 + k
    write_instances(tmp_path / "a.png", cityscapes_style)
    assert cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_array_equal(read_instances(tmp_path / "a.png"), cityscapes_style)
    carla = np.array([[14 << 16 | 0x1234, 14 << 16 | 0x1235], [12 << 16 | 0x1234, 0]], np.int32)
    write_instances(tmp_path / "b.png", carla)  # above 16 bits: CARLA's colour layout, exactly
    assert cv2.imread(str(tmp_path / "b.png"), cv2.IMREAD_UNCHANGED).shape == (2, 2, 3)
    np.testing.assert_array_equal(read_instances(tmp_path / "b.png"), carla)
    panoptic = np.array([[-1, 1 << 30], [5, 1 << 30]], np.int64)  # outside 24 bits: renumbered, boundaries kept
    write_instances(tmp_path / "c.png", panoptic)
    back = read_instances(tmp_path / "c.png")
    np.testing.assert_array_equal(boundary_map(back, back), boundary_map(panoptic, panoptic))
    np.testing.assert_array_equal(back, compact_ids(panoptic))
    with pytest.raises(InputError, match="H×W integer ids"):
        write_instances(tmp_path / "d.png", np.zeros((2, 2), np.float32))


def test_a_carla_instance_camera_png_reads_as_the_topic_decodes(tmp_path):
    """CARLA's image.save_to_disk writes the instance camera's BGRA as a PNG: read_instances gives the
    ids decode_instances gives for the same image on a ROS topic (tag << 16 | G + 256 B)."""
    rng = np.random.default_rng(3)
    bgra = rng.integers(0, 256, (6, 9, 4), dtype=np.uint8)
    bgra[..., 2] = rng.integers(0, 29, (6, 9))  # R: the tag
    cv2.imwrite(str(tmp_path / "bgra.png"), bgra)
    cv2.imwrite(str(tmp_path / "bgr.png"), bgra[..., :3])
    expected = decode_instances(bgra, "bgra8")
    np.testing.assert_array_equal(read_instances(tmp_path / "bgra.png"), expected)
    np.testing.assert_array_equal(read_instances(tmp_path / "bgr.png"), expected)
    g, b = int(bgra[0, 0, 1]), int(bgra[0, 0, 0])
    assert expected[0, 0] == carla_instance_key(np.uint8(bgra[0, 0, 2]), np.uint16(g + 256 * b))


def test_unreadable_instance_maps_are_named(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot decode instance map .*bad.png"):
        read_instances(tmp_path / "bad.png")
    with pytest.raises(InputError, match="instance map .*missing.png does not exist"):
        read_instances(tmp_path / "missing.png")


# -- the layouts find them -----------------------------------------------------------------------------

def test_folder_and_carla_layouts_find_instances_per_frame(parked, tmp_path_factory):
    [seq] = find_sequences("folder", parked)
    assert [f.instance.name if f.instance else None for f in seq.frames] == ["000000.png", "000001.png", None]
    assert seq.frames[0].instance == parked / "street" / "instances" / "000000.png"
    carla = tmp_path_factory.mktemp("carla")
    tags = np.full((H, W), 1, np.uint8)
    write_frame(carla, "run", 0, frames(1)[0], tags, np.full((H, W), 14 << 16 | 3, np.int32))
    write_frame(carla, "run", 1, frames(1)[0], tags)
    write_dataset_info(carla, "carla")
    [run] = find_sequences("carla", carla)
    assert [f.instance is not None for f in run.frames] == [True, False]


def test_cityscapes_finds_instance_ids_beside_pseudo_labels_and_gtfine(tmp_path):
    labels, ids = two_cars()
    for frame in (17, 18, 19):
        stem = f"aachen_000000_{frame:06d}"
        write_image(tmp_path / "leftImg8bit_sequence" / "train" / "aachen" / f"{stem}_leftImg8bit.png", frames(1)[0])
        write_label(tmp_path / "pseudo_labels_sequence" / "train" / "aachen" / f"{stem}_labelTrainIds.png", labels)
        write_label(tmp_path / "gtFine" / "train" / "aachen" / f"{stem}_gtFine_labelIds.png",
                    np.full((H, W), 26, np.uint8))
        if frame != 18:
            write_instances(tmp_path / "pseudo_labels_sequence" / "train" / "aachen" / f"{stem}_instanceIds.png",
                            ids.astype(np.int32) + 13000)
    write_instances(tmp_path / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_instanceIds.png",
                    np.full((H, W), 26001, np.int32))
    [seq] = find_sequences("cityscapes", tmp_path)
    assert [f.instance.name if f.instance else None for f in seq.frames] == [
        "aachen_000000_000017_instanceIds.png", None, "aachen_000000_000019_instanceIds.png"]
    [gt] = find_sequences("cityscapes", tmp_path, label_root=tmp_path / "gtFine", label_suffix="gtFine_labelIds",
                          label_space="cityscapes_ids")
    assert [f.instance.name if f.instance else None for f in gt.frames] == [
        None, None, "aachen_000000_000019_gtFine_instanceIds.png"]
    ds = build_dataset("cityscapes", tmp_path, size=(H, W), seq_len=3)
    assert ds.instance_summary == "instance maps: 2 of 3 frames (the rest: semantic edges)"
    assert ds[0]["has_instances"].tolist() == [True, False, True]


def test_kitti360_and_vid2vid_find_their_instance_folders(tmp_path):
    drive = "2013_05_28_drive_0000_sync"
    k360 = tmp_path / "kitti360"
    for frame in (4, 5):
        write_image(k360 / "data_2d_raw" / drive / "image_00" / "data_rect" / f"{frame:010d}.png", frames(1)[0])
        write_label(k360 / "data_2d_semantics" / "train" / drive / "image_00" / "semantic" / f"{frame:010d}.png",
                    np.full((H, W), 26, np.uint8))
    write_instances(k360 / "data_2d_semantics" / "train" / drive / "image_00" / "instance" / "0000000005.png",
                    np.full((H, W), 26004, np.int32))
    [seq] = find_sequences("kitti360", k360)
    assert [f.instance.name if f.instance else None for f in seq.frames] == [None, "0000000005.png"]

    v2v = tmp_path / "vid2vid"
    labels, ids = two_cars()
    for k in range(2):
        stem = f"aachen_00_{k:06d}_leftImg8bit"
        write_image(v2v / "train_B" / "seq0000" / f"{stem}.png", frames(1)[0])
        write_label(v2v / "train_A" / "seq0000" / f"{stem}.png", np.where(labels == CAR, 26, 7).astype(np.uint8))
        write_label(v2v / "train_inst" / "seq0000" / f"{stem}.png", np.where(ids == 0, 255, ids).astype(np.uint8))
    [seq] = find_sequences("vid2vid", v2v)
    assert all(f.instance == v2v / "train_inst" / "seq0000" / f.label.name for f in seq.frames)
    item = build_dataset("vid2vid", v2v, size=(H, W), seq_len=2)[0]
    assert item["edges"][:, 0, H // 2, W // 2 - 1: W // 2 + 1].all()  # 8-bit train_inst, 255 = stuff


# -- clips ----------------------------------------------------------------------------------------------

def test_edges_separate_touching_cars_and_fall_back_to_label_edges(parked):
    ds = build_dataset("folder", parked, size=(H, W), seq_len=3, with_instance_ids=True)
    assert ds.instance_summary == "instance maps: 2 of 3 frames (the rest: semantic edges)"
    item = ds[0]
    edges, labels = item["edges"], item["labels"].numpy()
    assert edges.shape == (3, 1, H, W) and edges.dtype == torch.float32
    assert set(edges.unique().tolist()) == {0.0, 1.0}
    assert item["has_instances"].tolist() == [True, True, False]
    seam = edges[:, 0, H // 4 + 1: 3 * H // 4 - 1, W // 2 - 1: W // 2 + 1]  # both pixels either side of the contact
    assert seam[:2].all() and not seam[2].any()  # frame 2: no instance map, one blob as the labels say
    np.testing.assert_array_equal(edges[2, 0].numpy(), boundary_map(labels[2]))
    assert not edges[:, 0, H // 2, W // 2 - 3].any() and not edges[:, 0, H // 2, W // 2 + 2].any()  # inside a car
    _, ids = two_cars()
    np.testing.assert_array_equal(item["instances"][0].numpy(), ids)
    np.testing.assert_array_equal(item["instances"][2].numpy(), labels[2])  # the fallback: the labels themselves
    off = build_dataset("folder", parked, size=(H, W), seq_len=3, with_instances=False)
    assert "not read" in off.instance_summary
    item = off[0]
    assert not item["has_instances"].any() and "instances" not in item
    np.testing.assert_array_equal(item["edges"][:, 0].numpy(), boundary_map(item["labels"].numpy()))


def test_edges_are_computed_on_the_output_grid_after_resize_crop_and_flip(parked):
    """64x32 frames into 16x16 clips: resized to 32x16, cropped, flipped. The ids are resized with
    nearest neighbour and the boundary drawn afterwards, so the seam between the cars is two pixels
    wide at the output resolution, never a resized (one-pixel or smeared) edge map."""
    half = build_dataset("folder", parked, size=(H // 2, W // 2), seq_len=2, random_clips=False)
    seam = half[0]["edges"][0, 0, H // 8 + 1: 3 * H // 8 - 1]
    np.testing.assert_array_equal(seam[:, W // 4 - 2: W // 4 + 2].numpy(), np.tile([0, 1, 1, 0], (H // 4 - 2, 1)))
    flipping = build_dataset("folder", parked, size=(H // 2, W // 2), seq_len=2, random_clips=False,
                             augment={"flip": True, "crop": False, "scale": [1, 1]})
    seen = set()
    for epoch in range(8):
        flipping.set_epoch(epoch)
        a = flipping[0]
        flipped = torch.equal(a["labels"], half[0]["labels"].flip(-1))
        assert torch.equal(a["edges"], half[0]["edges"].flip(-1) if flipped else half[0]["edges"])
        seen.add(flipped)
    assert seen == {True, False}
    cropping = build_dataset("folder", parked, size=(H // 2, H // 2), seq_len=2, random_clips=False,
                             augment={"flip": False, "crop": True, "scale": [1, 1]}, with_instance_ids=True)
    for epoch in range(4):
        cropping.set_epoch(epoch)
        a = cropping[0]
        x0 = next(x for x in range(W // 2 - H // 2 + 1) if torch.equal(a["images"], half[0]["images"][..., x: x + H // 2]))
        assert torch.equal(a["edges"][0, 0], torch.from_numpy(boundary_map(a["labels"][0].numpy(),
                                                                          a["instances"][0].numpy())).float())
        # the crop's own border is no boundary: only what differs inside the window
        assert torch.equal(a["edges"][0, 0, :, 1:-1], half[0]["edges"][0, 0, :, x0 + 1: x0 + H // 2 - 1])


def test_an_instance_map_of_another_size_is_an_error_naming_both_files(parked):
    write_instances(parked / "street" / "instances" / "000001.png", np.zeros((H, W + 2), np.int32))
    ds = build_dataset("folder", parked, size=(H, W), seq_len=3)
    with pytest.raises(InputError, match=r"instance map .*000001.png is 66x32 but its label map .*000001.png is 64x32"):
        ds[0]


def test_make_synthetic_touching_writes_instances_that_split_what_the_labels_merge(tmp_path):
    import yaml

    from svsgan_core.data.synthetic import generate_sequence

    assert svsgan(["make-synthetic", str(tmp_path), "--sequences", "1", "--frames", "2", "--size", "192x96",
                   "--touching", "--no-flow", "--supersample", "1", "--no-progress"]) == 0
    info = yaml.safe_load((tmp_path / "dataset.yaml").read_text())
    assert info["touching"] is True and info["instances"] is True
    [seq] = find_sequences("folder", tmp_path)
    seed = info["sequences"][0]["seed"]
    _, _, instances = generate_sequence(seed, 2, 96, 192, return_instances=True, touching=True)
    np.testing.assert_array_equal(np.stack([read_instances(f.instance) for f in seq.frames]), instances)
    item = build_dataset("folder", tmp_path, size=(96, 192), seq_len=2)[0]
    labels = item["labels"].numpy()
    merged = (item["edges"][:, 0].numpy() > 0) & ~boundary_map(labels)  # seams the labels alone do not show
    assert merged.sum() >= 20 and set(np.unique(labels[merged]).tolist()) & {CAR, CITYSCAPES.index("person")}
