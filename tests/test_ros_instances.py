"""The node with an instance topic, as real processes over real DDS (same set-up as tests/test_ros_node.py:
its own network namespace where allowed, its own ROS_DOMAIN_ID, discovery on localhost).

One camera publishes label frames (mono8 Cityscapes trainIds) and CARLA instance-camera images
(bgra8: tag in R, object id in G + 256 B) on two reliable topics; the node pairs them by stamp in
lossless mode. Every wait is on an event (a message, a status, a log line) with a timeout."""
from __future__ import annotations

import numpy as np
import pytest

from test_ros_node import (  # noqa: F401  (ros and checkpoint are fixtures)
    H, T0, W, assert_clean_exit, base_params, checkpoint, image_msg, ids_msg, needs_ros, outputs, pixels, ros,
    scene, start, wait_count, wait_status,
)

pytestmark = pytest.mark.ros


def carla_instances(k: int, height: int = H, width: int = W) -> np.ndarray:
    """Frame k's instance image as CARLA's instance camera draws it: the car of scene(k) split into two
    cars parked bumper to bumper (object ids 0x0102 and 0x0103), tag in R, id low byte in G, high in B."""
    ids = np.zeros((height, width), np.uint16)
    ids[:, :] = 7  # one object id for all the stuff
    car = scene(k)[:height, :width] == 13
    ids[car] = 0x0102
    cols = np.nonzero(car.any(axis=0))[0]
    if cols.size:
        ids[:, cols[cols.size // 2]:][car[:, cols[cols.size // 2]:]] = 0x0103
    tags = np.where(car, 14, 1).astype(np.uint8)
    bgra = np.dstack([(ids >> 8).astype(np.uint8), (ids & 0xFF).astype(np.uint8), tags,
                      np.full((height, width), 255, np.uint8)])
    return bgra


def offline(checkpoint, ks):
    """The frames VideoSynthesizer makes for scenes ks, in one sequence (one thread, like the node's)."""
    import torch

    from svsgan_core.runtime.synthesizer import VideoSynthesizer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        synth = VideoSynthesizer.from_checkpoint(checkpoint)
        return [synth.step(scene(k)) for k in ks]
    finally:
        torch.set_num_threads(threads)


@needs_ros
def test_two_topics_lossless_pair_by_stamp_unpaired_and_wrong_size_frames_are_counted_drops(ros, checkpoint):
    params = base_params(checkpoint, input_topics=['/cam/labels'], output_topics=['/cam/gen'],
                         instance_topics=['/cam/instances'], instance_wait_s=600.0, log_throttle_s=0.0)
    node, driver = start(ros, params, [['/cam/labels', 'Image', 'reliable'], ['/cam/instances', 'Image', 'reliable']],
                         [['/cam/gen', 'Image'], ['/svs_gan_generator/status', 'String']])

    def stamp(k):
        return T0 + k * 100_000_000

    def labels(k):
        driver.send(op='publish', topic='/cam/labels', msg=ids_msg(k, stamp(k), frame_id='cam'))

    def instances(k, **size):
        msg = image_msg(carla_instances(k, **size), 'bgra8', stamp(k), 'cam', clock=False)
        driver.send(op='publish', topic='/cam/instances', msg=msg)

    labels(0)
    instances(0)  # labels first
    instances(1)
    labels(1)  # instances first
    labels(2)  # its instance image is lost: dropped once 3 pairs
    labels(3)
    instances(3)
    labels(4)
    instances(4, height=H - 8)  # an instance image of another size: a logged drop
    instances(5)  # an instance image whose label frame is lost
    for k in (6, 7, 8):                  # labels ahead of their instances
        labels(k)
    for k in (6, 7, 8):
        instances(k)

    generated = [0, 1, 3, 6, 7, 8]
    wait_count(driver, '/cam/gen', len(generated))
    status = wait_status(driver, lambda s: s['cameras'][0]['published'] == len(generated)
                         and s['cameras'][0]['instances_unpaired'] == 1, what='status after the last pair')
    cam = status['cameras'][0]
    assert cam['instance'] == '/cam/instances'
    assert (cam['received'], cam['instances_received']) == (8, 8)
    assert (cam['dropped_unpaired'], cam['instances_unpaired'], cam['dropped_bad']) == (1, 1, 1)
    assert (cam['pending'], cam['unpaired_pending'], cam['dropped_overflow'], cam['lost']) == (0, 0, 0, 0)

    got = outputs(driver, '/cam/gen')
    assert [e['stamp_ns'] for e in got] == [stamp(k) for k in generated]  # each paired frame once, in order
    assert all((e['frame_id'], e['height'], e['width'], e['encoding']) == ('cam', H, W, 'rgb8') for e in got)
    # the tiny model has no instance channel: it takes the ids and makes the frames it makes without them
    for e, expected in zip(got, offline(checkpoint, generated)):
        assert np.abs(pixels(e).astype(int) - expected).mean() < 1.0

    out = node.output()
    assert 'dropped the frame at stamp 1.200000000: no instance image with this stamp on /cam/instances' in out
    assert '/cam/instances: dropped the instance image at stamp 1.500000000: no label frame' in out
    assert (f'instance image on /cam/instances at stamp 1.400000000 is {W}x{H - 8}, its label image {W}x{H}'
            in out)
    assert '+ instances /cam/instances' in out  # the ready line names the pairing
    assert node.popen.poll() is None
    assert_clean_exit(node)
