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

from svsgan_core import rosio
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
import resource, sys
from types import SimpleNamespace
from svsgan_core import rosio
from svsgan_core.errors import InputError
msg = SimpleNamespace(format="png", data=open(sys.argv[1], "rb").read())
try:
    rosio.labels_from_msg(msg, None)
    print("decoded")
except InputError as exc:
    print("refused:", exc)
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
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
    peak = int(out.stdout.split('peak_kb')[1])
    assert peak < 1_000_000, peak  # KiB: under 1 GB


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

    from svsgan_core.checkpoint import save_checkpoint
    from svsgan_core.config import preset
    from svsgan_core.models import SVSGenerator

    monkeypatch.setenv('SVSGAN_CACHE_DIR', str(tmp_path / 'cache'))
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / 'tiny', SVSGenerator(preset('tiny')))


def test_a_planted_or_corrupt_cache_entry_is_rebuilt_and_a_load_failure_rebuilds_once(tiny_checkpoint, capsys):
    pytest.importorskip('onnxruntime')
    from svsgan_core.export import OnnxSynthesizer, cached_onnx

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
