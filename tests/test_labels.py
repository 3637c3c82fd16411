import numpy as np
import pytest

from svsgan_core.data import labels as L
from svsgan_core.io import encoding as E
from svsgan_core.errors import InputError

SPACES = list(L.LABEL_SPACES)


def test_space_sizes_and_ignore():
    assert L.get_label_space("cityscapes").num_classes == 19
    assert L.get_label_space("cityscapes").ignore_index == 255
    assert L.get_label_space("cityscapes_ids").num_classes == 34
    assert L.get_label_space("carla").num_classes == 30  # 0.9.14+ tags 0..28 and CARLA 0.10's rock
    assert L.get_label_space("carla_legacy").num_classes == 23
    assert L.get_label_space("carla").ignore_index is None


def test_unknown_space_lists_valid_names():
    with pytest.raises(InputError) as e:
        L.get_label_space("kitti")
    for name in SPACES:
        assert name in str(e.value)


def test_label_space_is_frozen():
    with pytest.raises(Exception):
        L.get_label_space("carla").name = "x"


def test_palettes_match_design_tables():
    carla = L.get_label_space("carla")
    assert carla.index("road line") == 24 and carla.colors[24] == (157, 234, 50)
    assert carla.colors[28] == (180, 165, 180)
    legacy = L.get_label_space("carla_legacy")
    assert legacy.index("terrain") == 22 and legacy.colors[22] == (145, 170, 100)
    assert legacy.index("fence") == 2 and legacy.colors[2] == (100, 40, 40)
    cs = L.get_label_space("cityscapes")
    assert cs.colors[0] == (128, 64, 128) and cs.colors[18] == (119, 11, 32)
    assert L.get_label_space("cityscapes_ids").class_names[26] == "car"


@pytest.mark.parametrize("name", SPACES)
def test_palette_round_trip_every_class(name):
    space = L.get_label_space(name)
    ids = np.array([space.valid_ids] * 2, np.uint8)
    rgb = E.encode_palette(ids, space)
    assert rgb.shape == ids.shape + (3,) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == space.color_of(int(ids[0, 0]))
    back = E.decode_palette(rgb, space)
    # a colour several ids share (cityscapes_ids: void 1..4 black like 0, polegroup like pole;
    # kitti360: gate like fence, smallpole like pole, ...) decodes to the lowest of them
    lowest = {}
    for i in space.valid_ids:
        lowest.setdefault(space.color_of(i), i)
    expected = np.vectorize(lambda i: lowest[space.color_of(int(i))])(ids).astype(np.uint8)
    np.testing.assert_array_equal(back, expected)
    if name in ("cityscapes", "carla", "carla_legacy"):
        np.testing.assert_array_equal(back, ids)


def test_decode_palette_unknown_colours_reported():
    rgb = E.encode_palette(np.zeros((4, 4), np.uint8), "carla")
    rgb[0, :3] = (1, 2, 3)
    rgb[1, 0] = (9, 9, 9)
    with pytest.raises(InputError) as e:
        E.decode_palette(rgb, "carla")
    msg = str(e.value)
    assert "4 pixels" in msg and "(1,2,3)" in msg and "(9,9,9)" in msg


def test_decode_palette_rejects_wrong_shape_and_dtype():
    with pytest.raises(InputError):
        E.decode_palette(np.zeros((4, 4), np.uint8), "carla")
    with pytest.raises(InputError):
        E.decode_palette(np.zeros((4, 4, 3), np.float32), "carla")
    with pytest.raises(InputError):
        E.decode_palette(np.zeros((0, 4, 3), np.uint8), "carla")


@pytest.mark.parametrize("key", list(L.MAPPINGS))
def test_every_mapping_total_over_source(key):
    source, target = (L.get_label_space(n) for n in key)
    table = L.mapping_table(source, target)
    assert len(table) == source.num_classes
    ids = np.array(source.valid_ids, np.uint8)
    out = L.map_labels(ids, source, target)
    assert set(out.tolist()) <= set(target.valid_ids)
    if source.ignore_index is not None:
        assert out[list(source.valid_ids).index(source.ignore_index)] == target.ignore_index


@pytest.mark.parametrize("carla", ["carla", "carla_legacy"])
def test_carla_mappings_agree_between_numberings_and_views(carla):
    space = L.get_label_space(carla)
    train = L.mapping_table(carla, "cityscapes")
    label = L.mapping_table(carla, "cityscapes_ids")
    assert train == tuple(L.map_labels(np.array(label, np.uint8), "cityscapes_ids", "cityscapes").tolist())
    if carla == "carla_legacy":
        via_new = L.map_labels(np.array(L.mapping_table("carla_legacy", "carla"), np.uint8), "carla", "cityscapes")
        assert train == tuple(via_new.tolist())
    cs_ids = L.get_label_space("cityscapes_ids")
    expect = {
        "road line": ("road", 0),
        "ground": ("ground", 255),
        "bridge": ("bridge", 255),
        "rail track": ("rail track", 255),
        "guard rail": ("guard rail", 255),
        "static": ("static", 255),
        "dynamic": ("dynamic", 255),
        "pedestrian": ("person", 11),
        "terrain": ("terrain", 9),
    }
    if carla == "carla":
        expect["rock"] = ("terrain", 9)  # CARLA 0.10's tag 29: docs/labels.md
    for carla_name, (cs_name, train_id) in expect.items():
        tag = space.index(carla_name)
        assert train[tag] == train_id
        assert label[tag] == cs_ids.index(cs_name)


def test_cityscapes_ids_to_train_ids():
    ids = np.array([0, 7, 8, 18, 26, 33, 29], np.uint8)
    np.testing.assert_array_equal(L.map_labels(ids, "cityscapes_ids", "cityscapes"), [255, 0, 1, 255, 13, 18, 255])
    back = L.map_labels(np.array([0, 13, 255], np.uint8), "cityscapes", "cityscapes_ids")
    np.testing.assert_array_equal(back, [7, 26, 0])


def test_map_labels_out_of_range_names_values():
    ids = np.array([[0, 5, 30], [40, 255, 1]], np.uint8)
    with pytest.raises(InputError) as e:
        L.map_labels(ids, "carla", "cityscapes")
    assert "30, 40, 255" in str(e.value) and "3 pixels" in str(e.value)
    with pytest.raises(InputError) as e:
        L.map_labels(np.array([1, 300, -2]), "cityscapes", "cityscapes_ids")
    assert "-2" in str(e.value) and "300" in str(e.value)


def test_map_labels_wrong_dtype_and_empty():
    with pytest.raises(InputError):
        L.map_labels(np.zeros((2, 2), np.float32), "carla", "cityscapes")
    with pytest.raises(InputError):
        L.map_labels(np.zeros((2, 2), bool), "carla", "cityscapes")
    with pytest.raises(InputError):
        L.map_labels(np.zeros((0, 2), np.uint8), "carla", "cityscapes")


def test_map_labels_uint16_and_missing_mapping():
    out = L.map_labels(np.array([[1, 24]], np.uint16), "carla", "cityscapes")
    assert out.dtype == np.uint8 and out.tolist() == [[0, 0]]
    with pytest.raises(InputError, match="no label mapping"):
        L.map_labels(np.zeros(2, np.uint8), "cityscapes", "carla")


def test_carla_version_parsing():
    assert L.carla_space_for_version("0.9.16") == "carla"
    assert L.carla_space_for_version("0.9.14") == "carla"
    assert L.carla_space_for_version("0.9.13") == "carla_legacy"
    assert L.carla_space_for_version("legacy") == "carla_legacy"
    with pytest.raises(InputError):
        L.carla_space_for_version("banana")


def _bgra(rgb):
    return np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 255, np.uint8)])


@pytest.mark.parametrize("version", ["carla", "carla_legacy"])
def test_palette_decoder_needs_no_version(version):
    space = L.get_label_space(version)
    tags = np.array([list(range(space.num_classes))], np.uint8)
    rgb = E.encode_palette(tags, space)
    expected = L.map_labels(tags, space, "cityscapes")
    dec = E.LabelDecoder("carla_palette")
    np.testing.assert_array_equal(dec.decode(_bgra(rgb), "bgra8"), expected)
    np.testing.assert_array_equal(dec.decode(rgb, "rgb8"), expected)
    np.testing.assert_array_equal(dec.decode(np.ascontiguousarray(rgb[..., ::-1]), "bgr8"), expected)
    ids = E.LabelDecoder("carla_palette", target_space="cityscapes_ids").decode(_bgra(rgb), "bgra8")
    np.testing.assert_array_equal(ids, L.map_labels(tags, space, "cityscapes_ids"))


def test_palette_decoder_fence_and_terrain_from_both_tables():
    dec = E.LabelDecoder("carla_palette", target_space="carla")
    rgb = np.array([[(190, 153, 153), (100, 40, 40), (152, 251, 152), (145, 170, 100)]], np.uint8)
    assert dec.decode(rgb, "rgb8").tolist() == [[5, 5, 10, 10]]


@pytest.mark.parametrize("version", ["0.9.14", "0.9.13"])
def test_raw_decoder_reads_red_channel_per_version(version):
    space = L.get_label_space(L.carla_space_for_version(version))
    tags = np.arange(space.num_classes, dtype=np.uint8).reshape(1, -1)
    bgra = np.zeros(tags.shape + (4,), np.uint8)
    bgra[..., 2] = tags
    bgra[..., 0] = 77
    dec = E.LabelDecoder("carla_raw", carla_version=version)
    expected = L.map_labels(tags, space, "cityscapes")
    np.testing.assert_array_equal(dec.decode(bgra, "bgra8"), expected)
    np.testing.assert_array_equal(dec.decode(bgra[..., [2, 1, 0, 3]], "rgba8"), expected)
    vehicle = space.index("car" if space.name == "carla" else "vehicles")
    assert expected[0, vehicle] == 13


def test_raw_decoder_versions_differ():
    bgra = np.zeros((1, 1, 4), np.uint8)
    bgra[..., 2] = 7
    assert E.LabelDecoder("carla_raw", carla_version="0.9.16").decode(bgra, "bgra8")[0, 0] == 6  # traffic light
    assert E.LabelDecoder("carla_raw", carla_version="legacy").decode(bgra, "bgra8")[0, 0] == 0  # road


def test_carla_0_10_rock_tag_29_is_read_raw_and_as_palette_and_becomes_terrain():
    carla = L.get_label_space("carla")
    assert carla.index("rock") == 29 and carla.colors[29] == (180, 130, 70)  # CARLA 0.10's CityScapesPalette.h
    bgra = np.zeros((1, 2, 4), np.uint8)
    bgra[0, :, 2] = (29, 10)  # rock beside terrain, raw tags in red
    np.testing.assert_array_equal(E.LabelDecoder("carla_raw", carla_version="0.10.0").decode(bgra, "bgra8"), [[9, 9]])
    np.testing.assert_array_equal(E.LabelDecoder("carla_raw", target_space="cityscapes_ids",
                                                 carla_version="0.10.0").decode(bgra, "bgra8"), [[22, 22]])
    palette = np.array([[[70, 130, 180, 255], [70, 130, 180, 255]]], np.uint8)  # (180,130,70) as BGRA
    np.testing.assert_array_equal(E.LabelDecoder("carla_palette", target_space="carla").decode(palette, "bgra8"),
                                  [[29, 29]])


def test_raw_decoder_out_of_range_tag():
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[0, 0, 2] = 30
    with pytest.raises(InputError, match="30.*carla_palette"):
        E.LabelDecoder("carla_raw").decode(bgra, "bgra8")


def test_ids_decoder():
    dec = E.LabelDecoder("ids", source_space="cityscapes_ids")
    ids = np.array([[7, 26], [0, 33]], np.uint8)
    assert dec.decode(ids, "mono8").tolist() == [[0, 13], [255, 18]]
    assert dec.decode(ids.astype(np.uint16), "16UC1").tolist() == [[0, 13], [255, 18]]
    assert dec.decode(ids[..., None], "8UC1").shape == (2, 2)
    same = E.LabelDecoder("ids")
    assert same.decode(np.array([[3, 255]], np.uint8), "mono8").tolist() == [[3, 255]]


@pytest.mark.parametrize(
    "encoding, array, ros_encoding",
    [
        ("ids", np.zeros((2, 2), np.uint16), "mono8"),  # wrong dtype
        ("ids", np.zeros((2, 2), np.uint8), "mono16"),
        ("ids", np.zeros((2, 2, 3), np.uint8), "mono8"),  # channel count
        ("ids", np.zeros((2, 2, 3), np.uint8), "rgb8"),  # not an id encoding
        ("ids", np.zeros((0, 2), np.uint8), "mono8"),  # empty
        ("ids", np.full((2, 2), 19, np.uint8), "mono8"),  # out of range
        ("ids", np.full((2, 2), 256, np.uint16), "mono16"),
        ("carla_palette", np.zeros((2, 2, 3), np.uint8), "bgra8"),
        ("carla_palette", np.zeros((2, 2), np.uint8), "mono8"),
        ("carla_palette", np.zeros((2, 2, 4), np.uint16), "bgra8"),
        ("carla_palette", np.full((2, 2, 4), 3, np.uint8), "bgra8"),  # unknown colour
        ("carla_raw", np.zeros((2, 2, 4), np.uint8), "rgb8"),
        ("carla_raw", np.zeros((0, 0, 4), np.uint8), "bgra8"),
    ],
)
def test_decoder_rejects_bad_input(encoding, array, ros_encoding):
    with pytest.raises(InputError):
        E.LabelDecoder(encoding).decode(array, ros_encoding)


def test_decoder_bad_configuration():
    with pytest.raises(InputError, match="ids, carla_palette, carla_raw"):
        E.LabelDecoder("colours")
    with pytest.raises(InputError):
        E.LabelDecoder("ids", target_space="nope")
    with pytest.raises(InputError, match="no label mapping"):
        E.LabelDecoder("ids", source_space="cityscapes", target_space="carla")
    with pytest.raises(InputError):
        E.LabelDecoder("carla_raw", source_space="cityscapes")


def test_custom_space_encodes_and_decodes():
    space = L.LabelSpace("two", ("a", "b"), ((1, 2, 3), (4, 5, 6)), ignore_index=9, ignore_color=(7, 7, 7))
    ids = np.array([[0, 1, 9]], np.uint8)
    rgb = E.encode_palette(ids, space)
    assert rgb.tolist() == [[[1, 2, 3], [4, 5, 6], [7, 7, 7]]]
    np.testing.assert_array_equal(E.decode_palette(rgb, space), ids)
    with pytest.raises(InputError, match="2"):
        L.check_labels(np.array([2], np.uint8), space)
