"""Instance ids and their boundaries: CARLA's instance camera and mono id images decoded
(svsgan_core.io.encoding), and pix2pixHD's boundary map (svsgan_core.data.instances), by hand on tiny arrays."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from svsgan_core.data.instances import boundary_map, instance_edges
from svsgan_core.errors import InputError
from svsgan_core.io import rosio
from svsgan_core.io.encoding import carla_instance_ids, decode_instances


def carla_pixel(tag: int, object_id: int) -> tuple[int, int, int, int]:
    """One pixel as CARLA's server colours it (ATagger::GetActorLabelColor: R = tag, G = id & 0x00ff,
    B = (id & 0xff00) >> 8, alpha 1), in the BGRA byte order of carla.Image.raw_data."""
    r, g, b = tag, object_id & 0x00FF, (object_id & 0xFF00) >> 8
    return b, g, r, 255


def carla_image(tags_ids) -> np.ndarray:
    return np.array([[carla_pixel(t, i) for t, i in row] for row in tags_ids], np.uint8)


# -- decoding ------------------------------------------------------------------------------------

def test_carla_instance_camera_pixel_decodes_to_its_tag_and_16_bit_object_id():
    # the sensor reference's example: RGB [10, 20, 55] is tag 10 with instance id "20-55" (G, B)
    rgb = np.array([[[10, 20, 55]]], np.uint8)
    tags, ids = carla_instance_ids(rgb, "rgb")
    assert tags[0, 0] == 10 and ids[0, 0] == 20 + 256 * 55 and ids.dtype == np.uint16
    # every byte position: ids that differ only in the low or only in the high byte stay apart
    image = carla_image([[(14, 0x1234), (14, 0x1235), (14, 0x1334)], [(12, 0x0001), (0, 0), (14, 0xFFFF)]])
    tags, ids = carla_instance_ids(image, "bgra")
    np.testing.assert_array_equal(tags, [[14, 14, 14], [12, 0, 14]])
    np.testing.assert_array_equal(ids, [[0x1234, 0x1235, 0x1334], [0x0001, 0, 0xFFFF]])


def test_decode_instances_keys_carla_objects_by_tag_and_id_in_every_colour_order():
    image = carla_image([[(14, 7), (14, 8)], [(12, 7), (14, 7)]])  # a pedestrian shares car 7's 16-bit id
    expected = np.array([[14 << 16 | 7, 14 << 16 | 8], [12 << 16 | 7, 14 << 16 | 7]], np.int32)
    np.testing.assert_array_equal(decode_instances(image, "bgra8"), expected)
    rgba = image[..., [2, 1, 0, 3]]
    np.testing.assert_array_equal(decode_instances(rgba, "rgba8"), expected)
    np.testing.assert_array_equal(decode_instances(np.ascontiguousarray(image[..., :3]), "bgr8"), expected)
    np.testing.assert_array_equal(decode_instances(np.ascontiguousarray(rgba[..., :3]), "rgb8"), expected)
    np.testing.assert_array_equal(decode_instances(image, "8UC4"), expected)
    assert decode_instances(image, "bgra8").dtype == np.int32


def test_carla_instance_message_through_rosio_as_the_native_publisher_sends_it():
    image = carla_image([[(14, 300), (14, 301)]])
    msg = SimpleNamespace(height=1, width=2, encoding="bgra8", is_bigendian=0, step=8, data=image.tobytes())
    ids = rosio.instances_from_msg(msg)
    assert ids[0, 0] != ids[0, 1] and ids[0, 0] & 0xFFFF == 300 and ids[0, 0] >> 16 == 14


@pytest.mark.parametrize("encoding, dtype", [("mono8", np.uint8), ("8UC1", np.uint8), ("mono16", np.uint16),
                                             ("16UC1", np.uint16), ("32SC1", np.int32)])
def test_mono_instance_images_keep_their_ids(encoding, dtype):
    ids = np.array([[255, 255, 3], [26001, 26002, 7]], np.int64) % np.iinfo(dtype).max
    out = decode_instances(ids.astype(dtype), encoding)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, ids)
    np.testing.assert_array_equal(decode_instances(ids.astype(dtype)[..., None], encoding), ids)


def test_32sc1_round_trips_through_rosio_and_png_refuses_it():
    ids = np.array([[-1, 0], [70000, 2**31 - 1]], np.int32)
    msg = SimpleNamespace(**rosio.image_fields(ids, "32SC1"))
    np.testing.assert_array_equal(rosio.instances_from_msg(msg), ids)
    with pytest.raises(InputError, match="PNG stores 8 and 16 bits"):
        rosio.compress(ids, "png", encoding="32SC1")


@pytest.mark.parametrize("array, encoding, match", [
    (np.zeros((2, 2), np.uint8), "yuv422", "instance images must be"),
    (np.zeros((2, 2), np.uint16), "mono8", "needs dtype uint8"),
    (np.zeros((2, 2, 2), np.uint8), "mono8", "single-channel"),
    (np.zeros((2, 2, 3), np.uint8), "bgra8", r"HxWx4"),
    (np.zeros((0, 2), np.uint8), "mono8", "empty"),
])
def test_bad_instance_images_are_refused_with_a_reason(array, encoding, match):
    with pytest.raises(InputError, match=match):
        decode_instances(array, encoding)


def test_a_jpeg_instance_image_is_refused():
    msg = SimpleNamespace(format="jpeg", data=np.frombuffer(b"\xff\xd8\xff\xe0" + bytes(20), np.uint8))
    with pytest.raises(InputError, match="JPEG is lossy"):
        rosio.instances_from_msg(msg)


# -- boundaries ----------------------------------------------------------------------------------

def test_two_cars_side_by_side_get_a_boundary_where_they_touch():
    ids = np.array([
        [0, 0, 0, 0, 0, 0],
        [0, 5, 5, 6, 6, 0],
        [0, 5, 5, 6, 6, 0],
        [0, 5, 5, 6, 6, 0],
        [0, 5, 5, 6, 6, 0],
        [0, 0, 0, 0, 0, 0],
    ])
    expected = np.array([
        [0, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 0],
    ], bool)
    np.testing.assert_array_equal(instance_edges(ids), expected)
    # the same two cars as one semantic blob: the pixels where they touch are inside it, no boundary
    blob = np.where(ids > 0, 13, 0)
    expected_blob = expected.copy()
    expected_blob[2:4, 2:4] = False
    np.testing.assert_array_equal(instance_edges(blob), expected_blob)


def test_edges_mark_both_sides_of_a_change_and_only_four_neighbours():
    one = np.zeros((3, 3), np.int32)
    one[1, 1] = 1
    np.testing.assert_array_equal(instance_edges(one), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])  # no diagonals
    assert not instance_edges(np.full((4, 5), 9)).any()
    column = np.array([[1], [1], [2]])
    np.testing.assert_array_equal(instance_edges(column), [[False], [True], [True]])
    assert instance_edges(np.array([[3]])).tolist() == [[False]]


def test_edges_of_a_batch_and_of_torch_tensors_equal_numpy_per_frame():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 3, (2, 3, 7, 9))
    out = instance_edges(batch)
    assert out.dtype == bool and out.shape == batch.shape
    for b in range(2):
        for t in range(3):
            np.testing.assert_array_equal(out[b, t], instance_edges(batch[b, t]))
    tout = instance_edges(torch.from_numpy(batch))
    assert tout.dtype == torch.bool
    np.testing.assert_array_equal(tout.numpy(), out)
    with pytest.raises(InputError, match="HxW"):
        instance_edges(np.zeros(5))


def test_boundary_map_falls_back_to_semantic_edges_and_adds_instance_edges():
    labels = np.array([[13, 13, 13, 13], [13, 13, 13, 13], [0, 0, 0, 0]])
    np.testing.assert_array_equal(boundary_map(labels), instance_edges(labels))
    assert not boundary_map(labels)[0, 1:3].any()  # one blob of car: nothing between the two cars
    instances = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [255, 255, 255, 255]])  # vid2vid: stuff is 255
    both = boundary_map(labels, instances)
    np.testing.assert_array_equal(both, instance_edges(labels) | instance_edges(instances))
    assert both[0, 1:3].all()  # the cars' boundary is there
    stuff = np.array([[255, 255], [255, 255]])  # stuff only in the instance map: class edges survive
    assert boundary_map(np.array([[7, 8], [7, 8]]), stuff).all()
    with pytest.raises(InputError, match="differ in shape"):
        boundary_map(labels, instances[:2])


# -- the synthesizer takes them ------------------------------------------------------------------

def test_a_model_without_an_instance_channel_takes_instance_ids_and_ignores_them(one_thread):
    from svsgan_core.runtime.synthesizer import VideoSynthesizer

    synth = VideoSynthesizer.from_preset("tiny")
    h, w = synth.resolution
    labels = np.zeros((h, w), np.uint8)
    labels[h // 2:, :] = 13
    ids = np.zeros((h, w), np.int32)
    ids[h // 2:, w // 2:] = 1
    with_ids, without = synth.stream(), synth.stream()
    for _ in range(2):  # first frame and a continued one
        a = synth.step(labels, stream=with_ids, instances=ids)
        b = synth.step(labels, stream=without)
        np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="one instance map"):
        synth.step_batch([labels, labels], [synth.stream(), synth.stream()], instances=[ids])
