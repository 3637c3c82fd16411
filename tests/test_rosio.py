import array
from types import SimpleNamespace

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from svsgan_core.data import labels as L
from svsgan_core.io import encoding as E
from svsgan_core.io import rosio
from svsgan_core.errors import InputError

TS = get_typestore(Stores.ROS2_JAZZY)
BagImage = TS.types["sensor_msgs/msg/Image"]
BagCompressed = TS.types["sensor_msgs/msg/CompressedImage"]
BagHeader = TS.types["std_msgs/msg/Header"]
BagTime = TS.types["builtin_interfaces/msg/Time"]

RNG = np.random.default_rng(7)


def _array(encoding, h=5, w=7):
    dtype, channels = rosio.ENCODINGS[encoding]
    shape = (h, w) if channels == 1 else (h, w, channels)
    return RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


def _bag_image(**fields):
    header = BagHeader(stamp=BagTime(sec=1, nanosec=2), frame_id="cam")
    empty = dict(height=0, width=0, encoding="", is_bigendian=0, step=0, data=np.zeros(0, np.uint8))
    return BagImage(header=header, **{**empty, **fields})


def _bag_round_trip(msg, msgtype):
    return TS.deserialize_cdr(TS.serialize_cdr(msg, msgtype), msgtype)


def _raw(image, encoding, pad=0, big=False):
    """An Image-like with optional row padding and big-endian data."""
    h, w = image.shape[:2]
    if big:
        image = image.astype(image.dtype.newbyteorder(">"))
    rows = image.reshape(h, -1).view(np.uint8)
    padded = np.full((h, rows.shape[1] + pad), 0xEE, np.uint8)
    padded[:, : rows.shape[1]] = rows
    data = padded.tobytes()
    return SimpleNamespace(
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(big),
        step=padded.shape[1],
        data=data,
    )


@pytest.mark.parametrize("encoding", list(rosio.ENCODINGS))
def test_rclpy_image_round_trip(encoding):
    from sensor_msgs.msg import Image

    image = _array(encoding)
    msg = rosio.fill_image(Image(), image, encoding)
    assert isinstance(msg.data, array.array)
    assert (msg.height, msg.width, msg.encoding) == (5, 7, encoding)
    back = rosio.image_to_numpy(msg)
    assert back.dtype == image.dtype and back.flags.c_contiguous
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize("encoding", list(rosio.ENCODINGS))
def test_rosbags_image_round_trip_and_cross_check(encoding):
    image = _array(encoding)
    msg = _bag_round_trip(rosio.fill_image(_bag_image(), image, encoding), BagImage.__msgtype__)
    ours = rosio.image_to_numpy(msg)
    np.testing.assert_array_equal(ours, image)
    rbimage = pytest.importorskip("rosbags.image")
    np.testing.assert_array_equal(rbimage.image_to_cvimage(msg), ours)


def test_image_fields_build_a_rosbags_message():
    image = _array("rgb8")
    msg = _bag_image(**rosio.image_fields(image, "rgb8"))
    back = _bag_round_trip(msg, BagImage.__msgtype__)
    assert back.step == 21 and back.is_bigendian == 0
    np.testing.assert_array_equal(rosio.image_to_numpy(back), image)


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "mono16", "bgra8"])
def test_padded_step(encoding):
    image = _array(encoding)
    msg = _raw(image, encoding, pad=5)
    assert msg.step > image.shape[1] * image.itemsize * (1 if image.ndim == 2 else image.shape[2])
    np.testing.assert_array_equal(rosio.image_to_numpy(msg), image)
    # the last row's padding may be missing
    msg.data = msg.data[:-5]
    np.testing.assert_array_equal(rosio.image_to_numpy(msg), image)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_big_endian_16_bit(encoding):
    image = _array(encoding)
    image[0, 0] = 0x0102
    msg = _raw(image, encoding, big=True)
    out = rosio.image_to_numpy(msg)
    assert out.dtype == np.uint16 and out.dtype.isnative and out[0, 0] == 0x0102
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(rosio.image_to_numpy(_raw(image, encoding, pad=3, big=True)), image)
    rbimage = pytest.importorskip("rosbags.image")
    bag = _bag_image(
        height=msg.height, width=msg.width, encoding=encoding, is_bigendian=1, step=msg.step,
        data=np.frombuffer(msg.data, np.uint8).copy(),
    )
    np.testing.assert_array_equal(rbimage.image_to_cvimage(bag), out)


def test_result_is_independent_of_message_buffer():
    from sensor_msgs.msg import Image

    msg = rosio.fill_image(Image(), np.zeros((2, 2), np.uint8), "mono8")
    out = rosio.image_to_numpy(msg)
    out[0, 0] = 9
    assert msg.data[0] == 0
    msg.data.append(1)  # would raise BufferError if a view were still exported


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(encoding="yuv422"), "unsupported image encoding"),
        (dict(encoding="rgb16"), "unsupported image encoding"),
        (dict(height=0), "zero-size"),
        (dict(width=0, step=0), "zero-size"),
        (dict(step=20), "step 20 is less than"),
        (dict(data=b"\x00" * 100), "data has 100 bytes"),
        (dict(data=b""), "data has 0 bytes"),
    ],
)
def test_malformed_image_raises(change, message):
    msg = _raw(_array("rgb8", 5, 7), "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(InputError, match=message):
        rosio.image_to_numpy(msg)


def test_fill_image_rejects_mismatched_array():
    from sensor_msgs.msg import Image

    with pytest.raises(InputError):
        rosio.fill_image(Image(), np.zeros((2, 2, 3), np.uint16), "rgb8")
    with pytest.raises(InputError):
        rosio.fill_image(Image(), np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(InputError):
        rosio.fill_image(Image(), np.zeros((0, 2, 3), np.uint8), "rgb8")
    with pytest.raises(InputError):
        rosio.image_fields(np.zeros((2, 2, 3), np.uint8), "yuv422")


def test_fill_image_accepts_non_contiguous_views():
    image = _array("rgb8", 6, 8)
    view = image[::2, 1::2]
    msg = rosio.fill_image(SimpleNamespace(), view, "rgb8")
    np.testing.assert_array_equal(rosio.image_to_numpy(msg), view)


# ---------------------------------------------------------------------------------------------


def _compressed(fmt, data, rclpy=False):
    if rclpy:
        from sensor_msgs.msg import CompressedImage

        msg = CompressedImage()
        msg.format = fmt
        msg.data = array.array("B", data)
        return msg
    return BagCompressed(header=BagHeader(stamp=BagTime(sec=0, nanosec=0), frame_id=""), format=fmt,
                         data=np.frombuffer(data, np.uint8).copy())


@pytest.mark.parametrize("rclpy", [False, True])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "16UC1"])
def test_png_round_trip_restores_encoding(encoding, rclpy):
    image = _array(encoding, 6, 9)
    fmt, data = rosio.compress(image, "png", encoding=encoding)
    channels = rosio.ENCODINGS[encoding][1]
    assert fmt == f"{encoding}; png compressed " + ("bgr8" if channels > 1 else "")
    back, enc = rosio.decode_compressed(_compressed(fmt, data, rclpy))
    assert enc == encoding
    if channels == 4:  # image_transport drops alpha; decoding restores it opaque
        np.testing.assert_array_equal(back[..., :3], image[..., :3])
        assert (back[..., 3] == 255).all()
    else:
        np.testing.assert_array_equal(back, image)
        assert back.dtype == image.dtype


def test_bare_png_and_jpeg_formats_and_rosbags_cross_check():
    rbimage = pytest.importorskip("rosbags.image")
    image = _array("rgb8", 16, 16)
    _, data = rosio.compress(image, "png", encoding="rgb8")
    msg = _compressed("png", data)
    back, enc = rosio.decode_compressed(msg)
    assert enc == "bgr8"
    np.testing.assert_array_equal(back, image[..., ::-1])
    np.testing.assert_array_equal(rbimage.compressed_image_to_cvimage(msg), back)
    np.testing.assert_array_equal(rbimage.message_to_cvimage(msg, "rgb8"), image)

    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0] = 200
    fmt, data = rosio.compress(smooth, "jpeg", quality=95)
    assert fmt == "rgb8; jpeg compressed bgr8"
    back = rosio.compressed_to_numpy(_compressed(fmt, data))
    assert np.abs(back.astype(int) - smooth).max() <= 3
    np.testing.assert_array_equal(rbimage.compressed_image_to_cvimage(_compressed(fmt, data), "rgb8"), back)


def test_sixteen_bit_png_preserved():
    image = np.array([[0, 1, 300, 65535]], np.uint16)
    fmt, data = rosio.compress(image, "png")
    assert fmt.startswith("mono16; png")
    back, enc = rosio.decode_compressed(_compressed("png", data))
    assert enc == "mono16" and back.dtype == np.uint16
    np.testing.assert_array_equal(back, image)


def test_compressed_depth_header_skipped():
    image = np.array([[5, 600]], np.uint16)
    _, data = rosio.compress(image, "png")
    back, enc = rosio.decode_compressed(_compressed("16UC1; compressedDepth png", b"\x00" * 12 + data))
    assert enc == "16UC1"
    np.testing.assert_array_equal(back, image)


@pytest.mark.parametrize(
    "fmt, data, message",
    [
        ("tiff", b"abc", "unsupported format"),
        ("png", b"", "no data"),
        ("png", b"not a png at all", "could not decode"),
        ("bgr8; jpeg compressed bgr8", b"\xff\xd8garbage", "could not decode"),
    ],
)
def test_bad_compressed_raises(fmt, data, message):
    with pytest.raises(InputError, match=message):
        rosio.decode_compressed(_compressed(fmt, data))


def test_compress_rejects():
    with pytest.raises(InputError, match="8-bit"):
        rosio.compress(np.zeros((2, 2), np.uint16), "jpeg")
    with pytest.raises(InputError):
        rosio.compress(np.zeros((2, 2, 3), np.uint8), "webp")
    with pytest.raises(InputError):
        rosio.compress(np.zeros((2, 2, 3), np.uint8), "jpeg", quality=0)


# ---------------------------------------------------------------------------------------------


def test_labels_from_bgra8_palette_image_and_png():
    from sensor_msgs.msg import Image

    tags = np.array([[1, 24, 14], [5, 10, 0]], np.uint8)
    rgb = E.encode_palette(tags, "carla")
    bgra = np.dstack([rgb[..., ::-1], np.full(tags.shape, 255, np.uint8)])
    decoder = E.LabelDecoder("carla_palette")
    expected = L.map_labels(tags, "carla", "cityscapes")
    msg = rosio.fill_image(Image(), bgra, "bgra8")
    np.testing.assert_array_equal(rosio.labels_from_msg(msg, decoder), expected)
    fmt, data = rosio.compress(bgra, "png", encoding="bgra8")
    np.testing.assert_array_equal(rosio.labels_from_msg(_compressed(fmt, data), decoder), expected)
    np.testing.assert_array_equal(rosio.labels_from_msg(_compressed("png", data, rclpy=True), decoder), expected)


def test_labels_from_raw_tag_and_id_messages():
    tags = np.array([[1, 24], [6, 0]], np.uint8)
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 2] = tags
    msg = rosio.fill_image(_bag_image(), bgra, "bgra8")
    out = rosio.labels_from_msg(msg, E.LabelDecoder("carla_raw", carla_version="0.9.16"))
    np.testing.assert_array_equal(out, [[0, 0], [5, 255]])

    ids = np.array([[7, 26]], np.uint16)
    msg = _raw(ids, "16UC1", big=True)
    out = rosio.labels_from_msg(msg, E.LabelDecoder("ids", source_space="cityscapes_ids"))
    np.testing.assert_array_equal(out, [[0, 13]])
    fmt, data = rosio.compress(ids.astype(np.uint8), "png")
    out = rosio.labels_from_msg(_compressed(fmt, data), E.LabelDecoder("ids", source_space="cityscapes_ids"))
    np.testing.assert_array_equal(out, [[0, 13]])


def test_rosio_does_not_import_rclpy():
    import subprocess
    import sys

    code = "import sys, svsgan_core.io.rosio; assert 'rclpy' not in sys.modules and 'sensor_msgs' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
