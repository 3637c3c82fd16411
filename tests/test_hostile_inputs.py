"""Hostile input gets one clear line, loses nothing and costs no more memory than the work (issue 26).

The cases are those a hostile-input matrix found mishandled: each must now end in one line naming
the value, what is allowed and what to do, with a non-zero exit and no traceback; memory must stay
near what the work needs (checked in child processes, with their own VmHWM/VmPeak).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import yaml

from svsgan_core.cli import main
from svsgan_core.errors import CheckpointError, InputError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def one_line(capsys, rc, *parts) -> str:
    """The command failed with exit status 1 and said so in one stderr line holding every part."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if 'exporting' not in line]
    assert rc == 1 and 'Traceback' not in err and len(lines) == 1, err
    for part in parts:
        assert part in err, (part, err)
    return err


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """A small checkpoint, a 3-frame bag (palette camera, ids camera) and a shared ONNX cache."""
    from test_bags import IDS_CAM, PALETTE_CAM, small_config, write_input

    from svsgan_core.models import SVSGenerator
    from svsgan_core.runtime.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp('hostile')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('SVSGAN_CACHE_DIR', str(root / 'cache'))
        torch.manual_seed(0)
        ckpt = save_checkpoint(root / 'ckpt', SVSGenerator(small_config()))
        bag = write_input(root / 'in', 'mcap', 'jazzy', frames=3)
        yield SimpleNamespace(ckpt=ckpt, bag=bag, palette=PALETTE_CAM, ids=IDS_CAM, root=root)


def convert(env, out, *extra, maps=None):
    maps = maps or [f'{env.palette}:/gen']
    args = ['convert', str(env.bag), str(out), '--checkpoint', str(env.ckpt), '--no-progress']
    for m in maps:
        args += ['--map', m]
    return main(args + list(extra))


def nothing_written(folder: Path, out: Path) -> None:
    assert not out.exists() and not [p for p in folder.iterdir() if 'partial' in p.name]


# -- 1. an invalid target topic name -------------------------------------------------------------------

@pytest.mark.parametrize('target, reason', [('/9bad-name', 'must not start with a digit'),
                                            ('/a//b', 'empty token'),
                                            ('/cam gen', "only letters, digits and '_'"),
                                            ('/gen/', "must not end with '/'"),
                                            ('gen', "must start with '/'")])
def test_an_invalid_map_topic_is_refused_before_any_work(env, tmp_path, capsys, target, reason):
    rc = convert(env, tmp_path / 'out', maps=[f'{env.palette}:{target}'])
    one_line(capsys, rc, f'--map target {target!r} is not a valid ROS 2 topic name', reason)
    nothing_written(tmp_path, tmp_path / 'out')


@pytest.mark.parametrize('reference, extra, said', [
    ('/9bad', (), "--map reference '/9bad' is not a valid ROS 2 topic name"),
    ('{palette}', (), 'is a semantic source or a target topic'),
    ('/cam0/rgb:/more', (), '--map expects SOURCE:TARGET[:REFERENCE] topic names'),
    ('/cam0/rgb', ('--reference-max-dt', '2'), 'tolerance (--reference-max-dt) must be 0 to 0.5 seconds, got 2.0'),
    ('/cam0/rgb', ('--reference-max-dt', 'nan'), 'tolerance (--reference-max-dt) must be 0 to 0.5 seconds, got nan'),
], ids=['bad-name', 'the-source', 'four-topics', 'tolerance-2s', 'tolerance-nan'])
def test_a_bad_reference_camera_is_one_line(env, tmp_path, capsys, reference, extra, said):
    rc = convert(env, tmp_path / 'out', *extra, maps=[f'{env.palette}:/gen:{reference.format(palette=env.palette)}'])
    one_line(capsys, rc, said)
    nothing_written(tmp_path, tmp_path / 'out')


def test_the_convert_bag_entry_point_answers_bad_input_in_one_line(env, tmp_path):
    exe = Path(sysconfig.get_path('scripts')) / 'convert_bag'
    exe = str(exe) if exe.exists() else shutil.which('convert_bag')
    if not exe:
        pytest.skip('the svs_gan_ros console scripts are not installed')
    child_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / 'ros2_ws/src/svs_gan_ros')]))
    proc = subprocess.run([exe, str(env.bag), str(tmp_path / 'out'), '--checkpoint', str(env.ckpt), '--map',
                           f'{env.palette}:/9bad', '--ros-args', '-p', 'x:=1'],
                          capture_output=True, text=True, env=child_env, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert "--map target '/9bad' is not a valid ROS 2 topic name" in proc.stderr


# -- 2. lossy (JPEG) label frames --------------------------------------------------------------------------

def compressed_bag(path: Path, fmt: str, frames: int = 2) -> Path:
    """A .mcap with one mono8 class-id camera as CompressedImage in `fmt` (png or jpeg) and an rgb8 camera."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    ids = np.zeros((32, 48), np.uint8)
    ids[:, 24:] = 13  # an edge: JPEG rings around it
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection('/seg/compressed', 'sensor_msgs/msg/CompressedImage', typestore=store)
        rgb = w.add_connection('/rgb', 'sensor_msgs/msg/Image', typestore=store)
        for i in range(frames):
            ns = 1_000_000_000 + i * 50_000_000
            header = t['std_msgs/msg/Header'](
                stamp=t['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9), frame_id='cam')
            data = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', ids)[1].reshape(-1)
            msg = t['sensor_msgs/msg/CompressedImage'](header=header, format=f'mono8; {fmt} compressed mono8',
                                                       data=data)
            w.write(conn, ns, store.serialize_cdr(msg, conn.msgtype))
            image = t['sensor_msgs/msg/Image'](header=header, height=32, width=48, encoding='rgb8', is_bigendian=0,
                                               step=144, data=np.zeros(32 * 144, np.uint8))
            w.write(rgb, ns, store.serialize_cdr(image, rgb.msgtype))
    return path


def test_jpeg_label_frames_are_refused_as_lossy_in_convert_extract_and_the_node(env, tmp_path, capsys):
    from svsgan_core.commands.extract import extract_bag
    from svsgan_core.io import rosio
    from svsgan_core.io.encoding import LabelDecoder

    bag = compressed_bag(tmp_path / 'jpeg', 'jpeg')
    for encoding in ('auto', 'ids'):
        rc = main(['convert', str(bag), str(tmp_path / 'out'), '--checkpoint', str(env.ckpt), '--no-progress',
                   '--map', '/seg/compressed:/gen', '--label-encoding', encoding])
        one_line(capsys, rc, '/seg/compressed message #1', 'JPEG', 'lossy', 'png')
        nothing_written(tmp_path, tmp_path / 'out')
    with pytest.raises(InputError, match='JPEG.*lossy'):
        extract_bag(bag, tmp_path / 'ds', '/rgb', '/seg/compressed', progress=False)
    # the node decodes every label message with rosio.labels_from_msg (and drops what it refuses)
    _, data = rosio.compress(np.zeros((8, 8), np.uint8), 'jpeg')
    with pytest.raises(InputError, match='JPEG.*lossy'):
        rosio.labels_from_msg(SimpleNamespace(format='jpeg', data=data), LabelDecoder('ids'))
    # a png of the same frames converts: lossless compression is what label topics use
    png = compressed_bag(tmp_path / 'png', 'png')
    assert main(['convert', str(png), str(tmp_path / 'out'), '--checkpoint', str(env.ckpt), '--no-progress',
                 '--map', '/seg/compressed:/gen']) == 0, capsys.readouterr().err


# -- 3. unknown --label-space names -----------------------------------------------------------------------

def test_an_unknown_label_space_is_refused_on_every_input_kind_before_any_work(env, tmp_path, capsys):
    from svsgan_core.commands.extract import extract_bag

    for camera in (env.palette, env.ids):  # palette input ignored the name; ids input failed at frame 1
        rc = convert(env, tmp_path / 'out', '--label-space', 'bogus', maps=[f'{camera}:/gen'])
        err = one_line(capsys, rc, "--label-space 'bogus' is not a label space", 'cityscapes, cityscapes_ids')
        assert 'message #' not in err  # refused before reading the bag
        nothing_written(tmp_path, tmp_path / 'out')
    with pytest.raises(InputError, match="--label-space 'bogus' is not a label space"):
        extract_bag(env.bag, tmp_path / 'ds', '/cam0/rgb', env.palette, label_space='bogus', progress=False)
    rc = main(['eval', '--checkpoint', str(env.ckpt), '--data', str(tmp_path), '--label-space', 'bogus'])
    one_line(capsys, rc, "--label-space 'bogus' is not a label space")


def test_the_node_engine_refuses_an_unknown_label_space_for_palette_cameras_too():
    from svs_gan_ros.engine import CameraConfig, SynthesisEngine

    synth = SimpleNamespace(cfg=SimpleNamespace(label_space='cityscapes'), stream=lambda: None)
    cameras = [CameraConfig('in', 'out', 'carla_palette', '')]
    with pytest.raises(InputError, match="parameter label_space: 'bogus' is not a label space"):
        SynthesisEngine(synth, cameras, lambda *a: None, None, label_space='bogus')
    SynthesisEngine(synth, cameras, lambda *a: None, None, label_space='carla')  # a known one is fine


# -- 4. 5. 6. output path, reset gap and device values -----------------------------------------------------

def test_an_output_through_a_symlink_loop_is_one_line(env, tmp_path, capsys):
    (tmp_path / 'loop_a').symlink_to(tmp_path / 'loop_b')
    (tmp_path / 'loop_b').symlink_to(tmp_path / 'loop_a')
    for out, extra in ((tmp_path / 'loop_a' / 'out', ()), (tmp_path / 'loop_a', ('--overwrite',))):
        rc = convert(env, out, *extra)
        one_line(capsys, rc, 'goes through a symlink loop', 'name another output')
    assert (tmp_path / 'loop_a').is_symlink() and (tmp_path / 'loop_b').is_symlink()


@pytest.mark.parametrize('gap', ['1e300', '1e7', 'inf', '0', '-1'])
def test_a_reset_gap_outside_its_range_is_one_line(env, tmp_path, capsys, gap):
    rc = convert(env, tmp_path / 'out', '--reset-gap', gap)
    one_line(capsys, rc, 'the reset gap must be more than 0 and at most 1e+06 seconds')
    nothing_written(tmp_path, tmp_path / 'out')


@pytest.mark.parametrize('device', ['mps', 'xpu', 'cuda:7', 'meta'])
def test_a_device_this_torch_cannot_use_is_refused_before_any_work(env, tmp_path, capsys, device):
    if device.startswith('cuda') and torch.cuda.device_count() > 7:
        pytest.skip('this machine has a cuda:7')
    rc = convert(env, tmp_path / 'out', '--device', device)
    one_line(capsys, rc, f'--device {device!r} is not available', 'this PyTorch can use: cpu')
    nothing_written(tmp_path, tmp_path / 'out')


# -- 7. binary config files --------------------------------------------------------------------------------

BINARY = bytes(range(256)) * 8


def test_binary_checkpoint_and_training_configs_are_one_line(env, tmp_path, capsys):
    ckpt = tmp_path / 'ckpt'
    shutil.copytree(env.ckpt, ckpt)
    (ckpt / 'config.yaml').write_bytes(BINARY)
    rc = convert(env, tmp_path / 'out', '--checkpoint', str(ckpt))
    one_line(capsys, rc, f'{ckpt / "config.yaml"} is not a text (UTF-8 YAML) file')
    (tmp_path / 'train.yaml').write_bytes(BINARY)
    rc = main(['train', '--config', str(tmp_path / 'train.yaml'), '--check'])
    one_line(capsys, rc, f'{tmp_path / "train.yaml"} is not a text (UTF-8 YAML) file')


# -- 9. impossible networks are refused from the config, before anything is built ------------------------

IMPOSSIBLE = {'num_classes': {'num_classes': 1_000_000_000},
              'channels': {'dec_channels': [1_000_000] * 4},
              '4096x4096': {'height': 4096, 'width': 4096, 'dec_channels': [64, 128, 256, 512],
                            'img_channels': [32, 64, 128, 256], 'sem_channels': [32, 64, 128, 256]}}

_PEAK = '''
import sys
from svsgan_core.cli import main
rc = main(sys.argv[1:])
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("rc", rc, "peak_kb", peak)
'''


def impossible_checkpoint(env, folder: Path, change: dict) -> Path:
    shutil.copytree(env.ckpt, folder)
    data = yaml.safe_load((folder / 'config.yaml').read_text())
    data['model'].update(change)
    (folder / 'config.yaml').write_text(yaml.safe_dump(data))
    return folder


def test_an_impossible_training_model_is_refused_before_data_or_run_dir(tmp_path, monkeypatch, capsys):
    """A training config's model is checked as a checkpoint's is, first: a mistyped size is one line with
    the numbers, before the data is read (here it does not even exist) and before the run folder is made."""
    monkeypatch.delenv('SVSGAN_MAX_MODEL_GIB', raising=False)
    run_dir = tmp_path / 'run'
    rc = main(['train', '--config', str(REPO / 'training' / 'configs' / 'synthetic_cpu.yaml'),
               '--set', 'model.overrides.height=8192', '--set', 'model.overrides.width=16384',
               '--set', f'data.root={tmp_path / "no_data"}', '--run-dir', str(run_dir)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert "the training config's model" in err and 'of activations per frame at 16384x8192' in err, err
    assert not run_dir.exists()


@pytest.mark.parametrize('case', IMPOSSIBLE)
def test_impossible_networks_are_refused_with_the_numbers_in_little_memory(env, tmp_path, case):
    """Each tried to allocate gigabytes (2.5-4.7 GB peak) before failing with a traceback."""
    ckpt = impossible_checkpoint(env, tmp_path / case, IMPOSSIBLE[case])
    child_env = {k: v for k, v in os.environ.items() if k != 'SVSGAN_MAX_MODEL_GIB'}
    child_env.update(SVSGAN_CACHE_DIR=str(tmp_path / 'cache'), OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', _PEAK, 'convert', str(env.bag), str(tmp_path / 'out'),
                          '--checkpoint', str(ckpt), '--map', f'{env.palette}:/gen', '--no-progress'],
                         capture_output=True, text=True, cwd=REPO, env=child_env, timeout=600)
    err = out.stderr.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    assert 'over the limit of 16 GiB' in err and 'SVSGAN_MAX_MODEL_GIB' in err, err
    assert ('parameters' if case != '4096x4096' else 'of activations per frame at 4096x4096') in err, err
    rc, peak_kb = out.stdout.split()[1], int(out.stdout.split()[3])
    print(f'{case}: peak RSS {peak_kb / 1024:.0f} MB')  # the must-show (pytest -s)
    assert rc == '1' and peak_kb < 500_000, out.stdout


def test_the_size_estimate_follows_the_real_network_and_the_limit_can_be_raised(monkeypatch):
    import dataclasses

    from svsgan_core.models.config import preset
    from svsgan_core.models.generator import SVSGenerator
    from svsgan_core.runtime import preflight

    for name in ('tiny', 'small', '512x256'):
        cfg = preset(name)
        with torch.device('meta'):
            real = sum(p.numel() for p in SVSGenerator(cfg).parameters())
        assert 0.9 < preflight.estimate(cfg).parameters / real < 1.1, name
    big = dataclasses.replace(preset('512x256'), height=4096, width=4096)
    monkeypatch.delenv(preflight.LIMIT_ENV, raising=False)
    with pytest.raises(CheckpointError, match='over the limit of 16 GiB'):
        preflight.check(big, 'big')
    monkeypatch.setenv(preflight.LIMIT_ENV, '1000')
    assert preflight.check(big, 'big').activation_bytes > 16 * 2**30  # allowed once the user raises the limit
    monkeypatch.setenv(preflight.LIMIT_ENV, 'lots')
    with pytest.raises(InputError, match='SVSGAN_MAX_MODEL_GIB must be a positive number of GiB'):
        preflight.check(big, 'big')


def test_activations_estimate_covers_the_live_tensors_of_a_frame():
    """The activation estimate against the largest set of tensors alive at once in a real forward
    pass (tracked on the meta device, so nothing is computed)."""
    import dataclasses
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from svsgan_core.models.config import preset
    from svsgan_core.models.generator import SVSGenerator
    from svsgan_core.runtime import preflight

    class LiveBytes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live = self.peak = 0

        def _free(self, n):
            self.live -= n

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = tree_flatten((args, kwargs))[0]
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and not t._is_view() and not any(t is a for a in inputs):
                    n = t.numel() * t.element_size()
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, n)
            return out

    for name, size in (('tiny', None), ('small', (256, 512))):
        cfg = preset(name) if size is None else dataclasses.replace(preset(name), height=size[0], width=size[1])
        with torch.device('meta'):
            gen = SVSGenerator(cfg).eval()
        labels = torch.zeros(1, cfg.height, cfg.width, dtype=torch.long, device='meta')
        image = torch.zeros(1, 3, cfg.height, cfg.width, device='meta')
        tracker = LiveBytes()
        with torch.inference_mode(), tracker:
            gen(labels, labels, image)
        estimate = preflight.estimate(cfg).activation_bytes
        assert tracker.peak <= estimate <= 4 * tracker.peak, (name, tracker.peak, estimate)


# -- 10. a cached graph's digest that is a special file ----------------------------------------------------

_DIGEST = '''
import os, resource, sys
from pathlib import Path
from svsgan_core.runtime.export import _entry_ok
out = Path(sys.argv[1])
status = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("Vm")}
limit = (status["VmSize"] + 300_000) * 1024  # 300 MB more address space than now
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for target in sys.argv[2:]:
    record = out.with_name(out.name + ".sha256")
    record.unlink(missing_ok=True)
    record.symlink_to(target)
    print(target, _entry_ok(out), flush=True)
'''


def test_a_cache_digest_that_is_a_special_file_is_not_read(tmp_path):
    """A digest symlinked to /dev/zero was read whole (2.3 GB RSS); a FIFO would block forever."""
    out = tmp_path / 'abc.onnx'
    out.write_bytes(b'graph')
    os.mkfifo(tmp_path / 'fifo')
    proc = subprocess.run([sys.executable, '-c', _DIGEST, str(out), '/dev/zero', str(tmp_path / 'fifo')],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['/dev/zero', 'False', str(tmp_path / 'fifo'), 'False']


# -- 11. a garbage file with the MCAP magic --------------------------------------------------------------

_OPEN_BAG = '''
import sys
from svsgan_core.errors import InputError
from svsgan_core.io.bags import BagReader

def peak():
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmPeak:")][0]

before = peak()
try:
    BagReader(sys.argv[1])
except InputError as exc:
    print("refused:", exc)
print("peak_growth_kb", peak() - before)
'''


def test_a_garbage_mcap_record_length_is_checked_against_the_file_size_before_allocating(tmp_path):
    """The header record declares 3 GiB in a 4 KB file: the reader allocated it (a MemoryError past
    an address-space limit). VmPeak, this process's own virtual peak, shows any such allocation."""
    bag = tmp_path / 'garbage.mcap'
    bag.write_bytes(b'\x89MCAP0\r\n' + b'\x01' + struct.pack('<Q', 3 << 30) + os.urandom(4096))
    proc = subprocess.run([sys.executable, '-c', _OPEN_BAG, str(bag)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'refused:' in proc.stdout and 'MemoryError' not in proc.stdout, proc.stdout
    assert 'declares 3221225472 bytes at byte 8, but only 4096 bytes follow' in proc.stdout, proc.stdout
    growth = int(proc.stdout.split('peak_growth_kb')[1])
    assert growth < 500_000, proc.stdout  # KiB; the declared record alone is 3,145,728


# -- 13. 14. ONNX files -----------------------------------------------------------------------------------

def test_an_interrupted_load_keeps_a_valid_cache_entry(env, monkeypatch):
    """Ctrl-C while onnx's extension initialises surfaces as `ImportError: initialization failed`;
    that is no reason to delete a graph whose digest matches."""
    pytest.importorskip('onnxruntime')
    from svsgan_core.runtime.export import cached_onnx
    from svsgan_core.runtime.synthesizer import OnnxSynthesizer

    monkeypatch.setenv('SVSGAN_CACHE_DIR', str(env.root / 'cache'))
    out = cached_onnx(env.ckpt)
    record = out.with_name(out.name + '.sha256')
    good, digest = out.read_bytes(), record.read_text()
    for name in ('onnx', 'onnxruntime'):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, name, None)  # `import onnx` now fails as an interrupted one does
            with pytest.raises(ImportError):
                OnnxSynthesizer.from_checkpoint(env.ckpt)
        assert out.read_bytes() == good and record.read_text() == digest, name


def test_a_garbage_onnx_segmenter_is_one_line(tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    images = tmp_path / 'drive' / 'seq' / 'images'
    images.mkdir(parents=True)
    cv2.imwrite(str(images / '000000.png'), np.zeros((16, 16, 3), np.uint8))
    (tmp_path / 'seg.onnx').write_bytes(b'\x08\x07garbage, not a protobuf at all' * 10)
    rc = main(['pseudo-label', str(tmp_path / 'drive'), str(tmp_path / 'labels'), '--segmenter',
               str(tmp_path / 'seg.onnx'), '--device', 'cpu', '--no-progress'])
    one_line(capsys, rc, f"cannot load the ONNX segmenter '{tmp_path / 'seg.onnx'}'")


# -- 15. several bags, one bad -----------------------------------------------------------------------------

def corrupt_middle_message(src: Path, dest: Path, topic: str) -> Path:
    """A copy of `src` whose 2nd message on `topic` is CDR garbage: the bag opens, conversion fails midway."""
    from rosbags.rosbag2 import Reader, Writer

    with Reader(src) as reader, Writer(dest, version=9) as writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest)
                 for c in reader.connections}
        seen = 0
        for conn, ns, data in reader.messages():
            if conn.topic == topic:
                seen += 1
                if seen == 2:
                    data = b'\x00\x01\x00\x00' + b'\xff' * 12
            writer.write(conns[conn.id], ns, data)
    return dest


def test_two_bags_one_bad_keep_the_good_output_and_no_part_of_the_bad_one(env, tmp_path, capsys):
    """Documented in docs/bags.md: the good bag's output stays, the bad one's leaves nothing (not even a
    partial folder), the exit status is 1 and summary.json lists each input."""
    good = env.bag
    broken = corrupt_middle_message(good, tmp_path / 'broken', env.palette)
    truncated = tmp_path / 'truncated'
    shutil.copytree(good, truncated)
    for file in truncated.glob('*.mcap'):
        file.write_bytes(file.read_bytes()[: file.stat().st_size * 2 // 3])
    out = tmp_path / 'out'
    rc = main(['convert', str(good), str(broken), str(truncated), str(out), '--checkpoint', str(env.ckpt),
               '--map', f'{env.palette}:/gen', '--no-progress'])
    assert rc == 1, capsys.readouterr()
    summary = json.loads((out / 'summary.json').read_text())
    assert [(Path(i['input']).name, i['status']) for i in summary['inputs']] == [
        ('in', 'done'), ('broken', 'failed'), ('truncated', 'failed')]
    assert 'message #2' in summary['inputs'][1]['error']
    assert sorted(p.name for p in out.iterdir()) == ['in', 'summary.json']  # nothing hidden either
    assert (out / 'in' / 'metadata.yaml').is_file()


# -- the last net in every entry point ---------------------------------------------------------------------

@pytest.mark.parametrize('exc, part', [
    (OverflowError('int too large to convert to float'), 'a number is too large to use'),
    (MemoryError(), 'out of memory'),
    (UnicodeDecodeError('utf-8', b'\xff', 0, 1, 'invalid start byte'), 'a file that should be text is binary or not UTF-8'),
    (OSError(40, 'Too many levels of symbolic links', '/x/y'), 'Too many levels of symbolic links: /x/y'),
])
def test_expected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, exc, part):
    from svsgan_core.commands import info

    def fail(args):
        raise exc

    monkeypatch.setattr(info, 'run', fail)
    one_line(capsys, main(['info', 'tiny']), f'svsgan info: error: {part}')
    for args, env_value in ((['info', 'tiny', '--debug'], ''), (['--debug', 'info', 'tiny'], ''), (['info', 'tiny'], '1')):
        monkeypatch.setenv('SVSGAN_DEBUG', env_value)
        assert main(args) == 1
        err = capsys.readouterr().err
        assert 'Traceback' in err and err.strip().splitlines()[-1].startswith('svsgan info: error: '), err


def test_a_bug_keeps_its_traceback_and_says_where_to_report_it(monkeypatch, capsys):
    from svsgan_core.commands import info

    monkeypatch.setattr(info, 'run', lambda args: {}['no such key'])
    assert main(['info', 'tiny']) == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err and "KeyError: 'no such key'" in err
    assert 'this is a bug in svsgan: please report it' in err.strip().splitlines()[-1]
