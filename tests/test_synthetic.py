"""The procedural street videos: deterministic, well-labelled, and moving in a way flow can follow."""
import numpy as np
import pytest
import torch

from svsgan_core.data.synthetic import generate_sequence
from svsgan_core.errors import InputError
from svsgan_core.data.labels import get_label_space
from svsgan_core.models.flow import warp

CITYSCAPES = get_label_space("cityscapes")
H, W = 48, 96


@pytest.fixture(scope="module")
def sequences():
    return {seed: generate_sequence(seed, 6, H, W, return_flow=True) for seed in (0, 1, 2)}


def test_same_seed_same_video_other_seed_other_video(sequences):
    images, labels, flow, conf = sequences[0]
    again = generate_sequence(0, 6, H, W, return_flow=True)
    for a, b in zip((images, labels, flow, conf), again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(images, sequences[1][0])


def test_shapes_and_dtypes(sequences):
    images, labels, flow, conf = sequences[0]
    assert images.shape == (6, H, W, 3) and images.dtype == np.uint8
    assert labels.shape == (6, H, W) and labels.dtype == np.uint8
    assert flow.shape == (6, H, W, 2) and flow.dtype == np.float32
    assert conf.shape == (6, H, W) and conf.min() >= 0 and conf.max() <= 1
    assert not flow[0].any() and not conf[0].any()
    images_only = generate_sequence(0, 2, H, W)
    assert len(images_only) == 2


def test_labels_are_cityscapes_train_ids_with_many_classes(sequences):
    names = CITYSCAPES.class_names
    seen = set()
    for _, labels, _, _ in sequences.values():
        assert set(np.unique(labels)) <= set(CITYSCAPES.valid_ids)
        per_sequence = set(np.unique(labels[0])) - {CITYSCAPES.ignore_index}
        assert len(per_sequence) >= 6
        seen |= set(np.unique(labels).tolist())
    for name in ("road", "sidewalk", "building", "vegetation", "sky", "car", "pole"):
        assert names.index(name) in seen, name


def test_scene_and_objects_move(sequences):
    car = CITYSCAPES.index("car")
    for images, labels, flow, _ in sequences.values():
        assert np.abs(images[1:].astype(int) - images[:-1]).mean() > 1.0
        assert (labels[1:] != labels[:-1]).mean() > 0.005
        assert np.linalg.norm(flow[1:], axis=-1).mean() > 0.1
    # cars move across the image: their pixel set changes from the first frame to the last
    images, labels, _, _ = sequences[0]
    first, last = labels[0] == car, labels[-1] == car
    assert first.any() and last.any()
    assert (first & last).sum() < 0.9 * (first | last).sum()


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


def _inside_regions(labels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has one label: away from edges, which bilinear warping blurs."""
    inside = np.ones(labels.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            inside &= labels == np.roll(labels, (dy, dx), axis=(-2, -1))
    return inside


def test_exact_flow_explains_the_next_frame(sequences):
    """Textures move with the scene: warping frame i-1 by the flow gives frame i, labels included."""
    total_warped = total_still = 0.0
    for images, labels, flow, conf in sequences.values():
        frames = _as_tensor(images)
        f = torch.from_numpy(flow).permute(0, 3, 1, 2)
        warped = warp(frames[:-1], f[1:])
        moving = np.linalg.norm(flow[1:], axis=-1) > 0.3
        region = (conf[1:] > 0.5) & moving & _inside_regions(labels[1:])
        visible = torch.from_numpy(region)[:, None].expand_as(warped)
        error_warped = (warped - frames[1:]).abs()[visible].sum().item()
        error_still = (frames[:-1] - frames[1:]).abs()[visible].sum().item()
        assert error_warped < 0.9 * error_still
        total_warped += error_warped
        total_still += error_still
        ys, xs = np.mgrid[0:H, 0:W]
        sx = np.clip(np.rint(xs + flow[1:, ..., 0]), 0, W - 1).astype(int)
        sy = np.clip(np.rint(ys + flow[1:, ..., 1]), 0, H - 1).astype(int)
        source_labels = np.stack([labels[i][sy[i], sx[i]] for i in range(len(labels) - 1)])
        agree = (source_labels == labels[1:])[conf[1:] > 0.5].mean()
        assert agree > 0.9
    assert total_warped < 0.6 * total_still


def test_bad_arguments_are_input_errors():
    with pytest.raises(InputError):
        generate_sequence(0, 0, H, W)
    with pytest.raises(InputError):
        generate_sequence(0, 3, 4, W)


# -- instance ids and touching objects (issue 24) -------------------------------------------------------

THINGS = {CITYSCAPES.index(n) for n in ("person", "rider", "car", "truck", "bus", "bicycle")}


def touching_pairs(labels: np.ndarray, instances: np.ndarray) -> dict[int, set]:
    """class -> the pairs of objects of that class that touch somewhere (4-neighbour pixels with the same
    label and different nonzero instance ids): the places a semantic map cannot separate."""
    pairs: dict[int, set] = {}
    for a, b, la, lb in ((instances[..., :, :-1], instances[..., :, 1:], labels[..., :, :-1], labels[..., :, 1:]),
                         (instances[..., :-1, :], instances[..., 1:, :], labels[..., :-1, :], labels[..., 1:, :])):
        seam = (la == lb) & (a != b) & (a > 0) & (b > 0)
        for c, i, j in zip(la[seam].tolist(), a[seam].tolist(), b[seam].tolist()):
            pairs.setdefault(c, set()).add((min(i, j), max(i, j)))
    return pairs


def test_instance_ids_mark_each_object_and_leave_frames_labels_and_flow_alone(sequences):
    for seed, plain in sequences.items():
        *rest, instances = generate_sequence(seed, 6, H, W, return_flow=True, return_instances=True)
        for a, b in zip(plain, rest):
            np.testing.assert_array_equal(a, b)
        labels = plain[1]
        assert instances.shape == (6, H, W) and instances.dtype == np.uint16
        thing = np.isin(labels, list(THINGS))
        assert thing.any() and (instances[thing] > 0).all() and (instances[~thing] == 0).all()
        for i in np.unique(instances[instances > 0]):  # one object, one kind: a cyclist is rider + bicycle
            classes = set(np.unique(labels[instances == i]).tolist())
            assert len(classes) == 1 or classes == {CITYSCAPES.index("rider"), CITYSCAPES.index("bicycle")}
        # ids are the objects', not the frame's: most ids of one frame are there in the next one too
        shared = [len(set(np.unique(instances[t])) & set(np.unique(instances[t + 1]))) / len(np.unique(instances[t]))
                  for t in range(5)]
        assert min(shared) > 0.6


def test_touching_scenes_put_cars_and_pedestrians_against_each_other():
    car, person = CITYSCAPES.index("car"), CITYSCAPES.index("person")
    counts = {True: {car: 0, person: 0}, False: {car: 0, person: 0}}
    for seed in range(4):
        for touching in (True, False):
            _, labels, instances = generate_sequence(seed, 2, 96, 192, return_instances=True, touching=touching)
            pairs = touching_pairs(labels, instances)
            for c in (car, person):
                counts[touching][c] += len(pairs.get(c, ()))
            if touching:
                assert len(pairs.get(car, ())) >= 5  # every street has cars parked bumper to bumper
    # the default streets have some (perspective puts one car against the next), these many more
    assert counts[True][car] > 2 * counts[False][car] and counts[True][person] > 2 * counts[False][person]


def test_touching_rows_park_cars_bumper_to_bumper():
    """The street plan itself: along each parking strip, cars in rows whose bodies overlap by a few
    centimetres (they meet on screen at every angle), rows a few metres apart."""
    from svsgan_core.data.synthetic import _build_scene

    for seed in range(3):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5C5]))  # as generate_sequence seeds it
        scene = _build_scene(rng, 30, 128, 256, touching=True)
        assert all(p > 0 for p in scene.parking)
        for side in (-1, 1):
            parked = sorted((a for a in scene.actors if a.vx == a.vz == 0 and "dims" in a.data
                             and np.sign(a.x) == side and abs(a.x) > scene.road_half), key=lambda a: a.z)
            gaps = np.array([(b.z - b.data["dims"]["half_length"]) - (a.z + a.data["dims"]["half_length"])
                             for a, b in zip(parked, parked[1:])])
            touching = (gaps > -0.1) & (gaps <= 0)
            assert touching.sum() >= 4 and touching.mean() > 0.6, gaps
            assert ((gaps > 0) & (gaps < 3.5)).sum() == 0  # between rows: room for a car to leave
