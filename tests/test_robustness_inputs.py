"""Hostile input costs neither memory nor a traceback (issue 15): decompression bombs."""
from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from svsgan_core.io import rosio
from svsgan_core.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of zeros, compressed row by row so that making it needs no memory."""
    z = zlib.compressobj(9)
    row = bytes(1 + 3 * width)  # filter byte 0, then the pixels
    parts = [z.compress(row) for _ in range(height)]
    idat = b''.join(parts) + z.flush()
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return rosio._PNG_SIGNATURE + _chunk(b'IHDR', ihdr) + _chunk(b'IDAT', idat) + _chunk(b'IEND', b'')


_DECODE = '''
import sys
from types import SimpleNamespace
from svsgan_core.io import rosio
from svsgan_core.errors import InputError

def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

msg = SimpleNamespace(format="png", data=open(sys.argv[1], "rb").read())
before = status_kb("VmRSS")
try:
    rosio.labels_from_msg(msg, None)
    print("decoded")
except InputError as exc:
    print("refused:", exc)
print("growth_kb", status_kb("VmHWM") - before)
'''


def test_png_bomb_is_refused_from_its_header_with_little_memory(tmp_path):
    path = tmp_path / 'bomb.png'
    path.write_bytes(png_bomb(16384, 16384))  # 805 MB of pixels, 1.5 GB with the colour conversion
    assert path.stat().st_size < 2_000_000
    out = subprocess.run([sys.executable, '-c', _DECODE, str(path)], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert 'refused: CompressedImage: the png header declares 16384x16384 (268 MP), over the limit of 64 MP' \
        in out.stdout, out.stdout
    # VmHWM belongs to this process's own memory (ru_maxrss would carry the forking pytest's peak
    # across exec); decoding the bomb needs 805 MB, refusing it from the header almost nothing.
    growth = int(out.stdout.split('growth_kb')[1])
    assert growth < 200_000, growth  # KiB


def test_declared_size_reads_png_and_jpeg_headers_and_the_limit_is_a_parameter():
    image = np.zeros((30, 50, 3), np.uint8)
    for fmt in ('png', 'jpeg'):
        f, data = rosio.compress(image, fmt)
        assert rosio.declared_size(np.frombuffer(data, np.uint8)) == (30, 50), fmt
        msg = SimpleNamespace(format=f, data=data)
        assert rosio.decode_compressed(msg)[0].shape[:2] == (30, 50)
        with pytest.raises(InputError, match='over the limit'):
            rosio.decode_compressed(msg, max_pixels=30 * 50 - 1)
    assert rosio.declared_size(np.frombuffer(b'not an image at all!!!!!', np.uint8)) is None


# -- the ONNX cache ---------------------------------------------------------------------------------

@pytest.fixture()
def tiny_checkpoint(tmp_path, monkeypatch):
    import torch

    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.models.config import preset
    from svsgan_core.models import SVSGenerator

    monkeypatch.setenv('SVSGAN_CACHE_DIR', str(tmp_path / 'cache'))
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / 'tiny', SVSGenerator(preset('tiny')))


def test_a_planted_or_corrupt_cache_entry_is_rebuilt_and_a_load_failure_rebuilds_once(tiny_checkpoint, capsys):
    pytest.importorskip('onnxruntime')
    from svsgan_core.runtime.export import cached_onnx
    from svsgan_core.runtime.synthesizer import OnnxSynthesizer

    out = cached_onnx(tiny_checkpoint)
    good = out.read_bytes()
    record = out.with_name(out.name + '.sha256')
    assert record.is_file() and not out.with_suffix('.lock').exists()
    assert not list(out.parent.glob('*.tmp'))
    capsys.readouterr()

    assert cached_onnx(tiny_checkpoint) == out and 'exporting' not in capsys.readouterr().err  # trusted reuse

    out.write_bytes(good[:-100] + bytes(100))  # corrupt in place
    assert cached_onnx(tiny_checkpoint) == out
    assert 'does not match its stored digest; deleting it and exporting again' in capsys.readouterr().err
    assert out.read_bytes() != good[:-100] + bytes(100) and record.read_text().strip()

    record.unlink()
    out.write_bytes(b'planted')  # a file under the key that we never wrote
    OnnxSynthesizer.from_checkpoint(tiny_checkpoint)
    assert 'does not match its stored digest' in capsys.readouterr().err
    assert out.read_bytes() != b'planted'

    # a file with a matching digest that onnxruntime cannot load (another runtime's graph, say)
    import hashlib
    out.write_bytes(b'not onnx')
    record.write_text(hashlib.sha256(b'not onnx').hexdigest())
    synth = OnnxSynthesizer.from_checkpoint(tiny_checkpoint)
    assert 'could not be loaded' in capsys.readouterr().err
    assert synth.step(np.zeros((64, 128), np.uint8)).shape == (64, 128, 3)


# -- user-facing failures: one line, non-zero exit, no traceback --------------------------------------

def _one_line_error(capsys, rc, part):
    err = capsys.readouterr().err.strip()
    assert rc == 1 and 'Traceback' not in err and part in err, err
    assert len([line for line in err.splitlines() if 'exporting' not in line]) == 1, err
    return err


@pytest.fixture()
def bag_and_checkpoint(tmp_path, monkeypatch):
    import torch
    from test_bags import PALETTE_CAM, small_config, write_input

    from svsgan_core.runtime.checkpoint import save_checkpoint
    from svsgan_core.models import SVSGenerator

    monkeypatch.setenv('SVSGAN_CACHE_DIR', str(tmp_path / 'cache'))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / 'small', SVSGenerator(small_config()))
    return write_input(tmp_path / 'in', 'mcap', 'jazzy', frames=3), ckpt, PALETTE_CAM


@pytest.mark.parametrize('extra, part', [(['--reset-gap', 'inf'], 'the reset gap must be more than 0'),
                                         (['--device', 'foo'], "--device 'foo' is not available"),
                                         (['--max-megapixels', '0'], 'the pixel limit must be a positive number'),
                                         (['--max-megapixels', 'nan'], 'the pixel limit must be a positive number')])
def test_bad_convert_values_are_one_clear_line(bag_and_checkpoint, tmp_path, capsys, extra, part):
    from svsgan_core.cli import main
    bag, ckpt, cam = bag_and_checkpoint
    rc = main(['convert', str(bag), str(tmp_path / 'out'), '--checkpoint', str(ckpt), '--map', f'{cam}:/gen',
               '--no-progress'] + extra)
    _one_line_error(capsys, rc, part)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('storage', ['mcap', 'db3'])
def test_output_errors_are_one_clear_line_and_leave_nothing(bag_and_checkpoint, tmp_path, capsys, monkeypatch,
                                                            storage):
    import errno

    from svsgan_core.cli import main
    bag, ckpt, cam = bag_and_checkpoint
    (tmp_path / 'afile').write_text('x')
    args = ['--checkpoint', str(ckpt), '--map', f'{cam}:/gen', '--no-progress', '--format', storage]
    rc = main(['convert', str(bag), str(tmp_path / 'afile' / 'out')] + args)  # the parent is a file
    _one_line_error(capsys, rc, 'afile')

    import builtins
    import io
    real_open = io.open  # disk full while the bag is written: every write to the partial output fails

    class FullFile:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device', self._f.name)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self._f.close()

    def opener(file, mode='r', *a, **kw):
        f = real_open(file, mode, *a, **kw)
        return FullFile(f) if 'w' in mode and 'svsgan-partial' in str(file) else f

    out = tmp_path / 'full'
    monkeypatch.setattr(builtins, 'open', opener)
    monkeypatch.setattr(io, 'open', opener)
    if storage == 'db3':
        import sqlite3
        real_connect = sqlite3.connect

        class FullDb:
            def __init__(self, conn):
                self._c = conn

            def __getattr__(self, name):
                if name in ('execute', 'executemany', 'commit'):
                    def fail(*a, **kw):
                        raise sqlite3.OperationalError('database or disk is full')
                    return fail
                return getattr(self._c, name)

        monkeypatch.setattr(sqlite3, 'connect', lambda *a, **kw: FullDb(real_connect(*a, **kw)))
    rc = main(['convert', str(bag), str(out)] + args)
    err = capsys.readouterr().err.strip()
    monkeypatch.undo()
    assert rc == 1 and 'Traceback' not in err, err
    assert len([line for line in err.splitlines() if 'exporting' not in line]) == 1, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if 'partial' in p.name]


def png_bag(path: Path, sizes: list[tuple[int, int]]) -> Path:
    """A .mcap with one semantic camera as png CompressedImage (mono8 class ids, all 0), one frame
    per (height, width), 50 ms apart."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    t = store.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection('/seg/compressed', 'sensor_msgs/msg/CompressedImage', typestore=store)
        for i, (h, wd) in enumerate(sizes):
            ns = 1_000_000_000 + i * 50_000_000
            header = t['std_msgs/msg/Header'](
                stamp=t['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9), frame_id='cam')
            data = cv2.imencode('.png', np.zeros((h, wd), np.uint8))[1].reshape(-1)
            msg = t['sensor_msgs/msg/CompressedImage'](header=header, format='png', data=data)
            w.write(conn, ns, store.serialize_cdr(msg, conn.msgtype))
    return path


def test_convert_refuses_a_png_over_max_megapixels_in_one_line_leaving_no_output_and_a_higher_limit_takes_it(
        bag_and_checkpoint, tmp_path, capsys):
    """The node's max_megapixels for `svsgan convert`: a frame declaring 1.2 MP after two good ones,
    limit 1 MP: one line naming the frame and the limit, nothing written; limit 2 MP: every frame."""
    from rosbags.highlevel import AnyReader

    from svsgan_core.cli import main
    _, ckpt, _ = bag_and_checkpoint
    bag = png_bag(tmp_path / 'png', [(40, 72), (40, 72), (1000, 1200)])
    args = ['--checkpoint', str(ckpt), '--map', '/seg/compressed:/gen', '--no-progress', '--label-encoding', 'ids']
    out = tmp_path / 'out'
    rc = main(['convert', str(bag), str(out), '--max-megapixels', '1'] + args)
    err = _one_line_error(capsys, rc, 'declares 1200x1000 (1 MP), over the limit of 1 MP; not decoded')
    assert '/seg/compressed' in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if 'partial' in p.name]

    assert main(['convert', str(bag), str(out), '--max-megapixels', '2'] + args) == 0, capsys.readouterr().err
    with AnyReader([out]) as reader:
        gen = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(
            [c for c in reader.connections if c.topic == '/gen'])]
    assert [(m.height, m.width) for m in gen] == [(40, 72), (40, 72), (1000, 1200)]


def test_impossible_config_and_non_finite_weights_are_refused_at_load(tmp_path):
    import torch
    import yaml
    from test_bags import small_config

    from svsgan_core.runtime.checkpoint import load_generator, save_checkpoint
    from svsgan_core.errors import CheckpointError
    from svsgan_core.models import SVSGenerator

    torch.manual_seed(0)
    gen = SVSGenerator(small_config())
    ckpt = save_checkpoint(tmp_path / 'ok', gen)
    cfg_file = ckpt / 'config.yaml'
    data = yaml.safe_load(cfg_file.read_text())
    data['model'].update(height=100_000, width=200_000)
    cfg_file.write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match='outside 8..4096 pixels a side'):
        load_generator(ckpt)

    with torch.no_grad():
        next(gen.parameters()).fill_(float('nan'))
    with pytest.raises(CheckpointError, match='hold NaN or infinity'):
        load_generator(save_checkpoint(tmp_path / 'nan', gen))


def test_the_next_run_in_a_folder_removes_partial_outputs_of_dead_processes(tmp_path, capsys):
    import os

    from svsgan_core.io.bags import AtomicDirectory

    import socket

    host = socket.gethostname()
    dead = tmp_path / f'.other_output.svsgan-partial-{host}-999999999'  # another output's, killed with -9
    dead_old = tmp_path / '.older.svsgan-partial-999999998'  # named by an svsgan without the host
    alive = tmp_path / f'.busy.svsgan-partial-{host}-{os.getppid()}'  # a writer still running
    # shared storage: a writer on another machine, whose process id means nothing here
    elsewhere = tmp_path / f'.remote.svsgan-partial-{host}x-999999999'
    for folder in (dead, dead_old, alive, elsewhere):
        folder.mkdir()
        (folder / 'x.mcap').write_bytes(bytes(1000))
    new = AtomicDirectory(tmp_path / 'new_output')
    assert new.partial.name == f'.new_output.svsgan-partial-{host}-{os.getpid()}'
    assert not dead.exists() and not dead_old.exists() and alive.exists() and elsewhere.exists()
    assert f'removing {dead}, left by an interrupted run' in capsys.readouterr().err
