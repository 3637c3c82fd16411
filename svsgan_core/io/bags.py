"""ROS 2 bags (.db3 and .mcap) read and written with rosbags: no ROS installation needed.

Shared by `svsgan convert`, `svsgan extract` and `svsgan demo`.

- Reading (`BagReader`) only ever opens the input read-only, and names the topic and position of
  whatever it cannot read (a truncated file, a corrupt message).
- Writing (`BagWriter`) goes into a temporary folder beside the destination, named after this
  host and process, and is renamed into place only once the bag is complete and synced, so Ctrl-C, kill -9 or
  a crash never leaves a half-written bag under the final name. Leftovers of a dead process are
  removed by the next run that writes the same destination.

Type definitions: what the bag itself stores wins; a bag without them (Humble's .db3) is read with
the type store of its ROS distribution (metadata `ros_distro`, else Humble, or the one named).
"""
from __future__ import annotations

import mmap
import os
import re
import shutil
import socket
import sqlite3
import struct
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import yaml

from ..errors import InputError

try:
    from rosbags.interfaces import Connection, MessageDefinitionFormat
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise InputError(f"reading and writing ROS 2 bags needs the rosbags package ({exc}); "
                     "install it with: pip install 'svsgan[bags]'") from None

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

#: storage name (file extension) -> rosbags plugin; metadata.yaml calls db3 "sqlite3"
STORAGES = {"db3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
_STORAGE_IDS = {"sqlite3": "db3", "mcap": "mcap"}
TYPESTORES = tuple(s.value.removeprefix("ros2_") for s in Stores if s.value.startswith("ros2_"))
_PARTIAL = ".svsgan-partial-"


class BagMessage(NamedTuple):
    connection: Connection
    timestamp: int  # bag (receive) time, ns
    data: bytes  # the serialized message, exactly as stored
    index: int  # position within its topic, from 0


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_topic_name(name: str, what: str) -> str:
    """`name` if it is a full ROS 2 topic name (rcl's rules: `/`-separated tokens of letters, digits
    and `_`, none starting with a digit), as a bag stores it; else an InputError naming `what`."""
    text = str(name)
    if not text.startswith("/"):
        problem = "it must start with '/' (a bag stores full names)"
    elif text.endswith("/"):
        problem = "it must not end with '/'"
    else:
        tokens = text[1:].split("/")
        bad = next((t for t in tokens if not _TOKEN.fullmatch(t)), None)
        if bad is None:
            return text
        problem = ("it has an empty token ('//')" if bad == "" else
                   f"token {bad!r} must not start with a digit" if bad[0].isdigit() else
                   f"token {bad!r} may hold only letters, digits and '_'")
    raise InputError(f"{what} {text!r} is not a valid ROS 2 topic name: {problem}; e.g. /camera/generated")


def typestore_name(name: str | None, ros_distro: str | None) -> str:
    """The distribution whose type store decodes a bag: the one named, else the bag's own, else humble."""
    for candidate in (name, ros_distro):
        if candidate:
            key = str(candidate).strip().lower().removeprefix("ros2_")
            if key in TYPESTORES:
                return key
            if candidate is name:
                raise InputError(f"unknown type store {name!r}; choose from {', '.join(TYPESTORES)}")
    return "humble"


def writer_version(input_version: int | None = None, distro: str | None = None) -> int:
    """rosbag2 metadata version to write: 9 (Jazzy's QoS format) where the input bag or the named
    distribution uses it, else 8, which older readers understand."""
    if (input_version or 0) >= 9 or (distro or "") in TYPESTORES[TYPESTORES.index("jazzy"):]:
        return 9
    return 8


def locate_bag(path: str | os.PathLike) -> tuple[Path, str]:
    """The path rosbags opens for a bag (its folder, or a bare .db3/.mcap file) and its storage."""
    source, storage, _ = _locate(Path(path).expanduser())
    return source, storage


def _locate(path: Path) -> tuple[Path, str, dict]:
    """locate_bag, plus the folder's metadata (empty for a bare file)."""
    if not path.exists():
        raise InputError(f"no bag at {path}")
    if path.is_file():
        storage = path.suffix.lower().lstrip(".")
        if storage not in STORAGES:
            raise InputError(f"{path} is not a ROS 2 bag: expected a bag folder or a .db3/.mcap file")
        return path, storage, {}
    meta = path / "metadata.yaml"
    if meta.is_file():
        info = _bag_info(meta)
        return path, _STORAGE_IDS.get(str(info.get("storage_identifier")), "db3"), info
    files = [p for p in path.iterdir() if p.suffix.lower().lstrip(".") in STORAGES]
    if len(files) == 1:
        return files[0], files[0].suffix.lower().lstrip("."), {}
    raise InputError(f"{path} is not a ROS 2 bag: it has no metadata.yaml and {len(files)} .db3/.mcap files")


def _bag_info(meta: Path) -> dict:
    try:
        info = yaml.load(meta.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        return dict(info.get("rosbag2_bagfile_information") or {})
    except (yaml.YAMLError, OSError, AttributeError, TypeError, ValueError):
        return {}  # rosbags says what is wrong when it opens the bag


def _where(topic: str, index: int, timestamp: int, start: int) -> str:
    offset = f", {(timestamp - start) / 1e9:.3f} s into the bag" if start <= timestamp else ""
    return f"topic {topic} message #{index + 1} (bag time {timestamp} ns{offset})"


class BagReader:
    """An input bag, opened read-only; a context manager."""

    def __init__(self, path: str | os.PathLike, typestore: str | None = None):
        self.path = Path(path).expanduser()
        self.source, self.storage, info = _locate(self.path)
        self.version: int | None = info.get("version")
        self._reader = Reader(self.source)
        try:
            for file in self._storage_files():
                if file.suffix.lower() == ".mcap":
                    _check_mcap_lengths(file)
            self._reader.open()
        except Exception as exc:  # noqa: BLE001 - any failure of the storage layer is the bag's
            raise InputError(self._open_error(exc)) from None
        self.ros_distro: str | None = self._reader.ros_distro
        self.typestore_name = typestore_name(typestore, self.ros_distro)
        self.typestore = get_typestore(Stores(f"ros2_{self.typestore_name}"))
        self.connections: list[Connection] = list(self._reader.connections)
        self.compression = (self._reader.compression_mode or None, self._reader.compression_format or None)
        self.custom_data: dict[str, str] = dict(getattr(self._reader.storage.metadata, "custom", None) or {})
        self.start_time: int = self._reader.start_time

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- topics ---------------------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, str]:
        """topic -> message type."""
        return {c.topic: c.msgtype for c in self.connections}

    def count(self, topic: str) -> int:
        return sum(c.msgcount for c in self.connections if c.topic == topic)

    def require(self, topic: str, msgtypes: Iterable[str] = IMAGE_TYPES) -> str:
        """The type of `topic`, which must exist and be one of `msgtypes`."""
        msgtypes = tuple(msgtypes)
        if topic not in self.topics:
            listing = "\n  ".join(f"{t} ({m}, {self.count(t)} messages)" for t, m in sorted(self.topics.items()))
            raise InputError(f"{self.path} has no topic {topic!r}; its topics are:\n  {listing or '(none)'}")
        msgtype = self.topics[topic]
        if msgtype not in msgtypes:
            raise InputError(f"{self.path}: topic {topic} carries {msgtype}, expected {' or '.join(msgtypes)}")
        return msgtype

    # -- messages -------------------------------------------------------------------------------
    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Messages in bag order (of the given topics, else all), raw bytes as stored."""
        wanted = None if topics is None else set(topics)
        conns = [c for c in self.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        counts: dict[str, int] = defaultdict(int)
        last = None
        stream = self._reader.messages(conns)
        while True:
            try:
                conn, timestamp, data = next(stream)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001
                where = "its first message" if last is None else _where(*last, self.start_time)
                raise InputError(f"{self.path} is corrupt or truncated: cannot read past {where}: "
                                 f"{type(exc).__name__}: {exc}") from None
            index = counts[conn.topic]
            counts[conn.topic] = index + 1
            last = (conn.topic, index, timestamp)
            yield BagMessage(conn, timestamp, data, index)

    def where(self, msg: BagMessage) -> str:
        """`msg`'s position, for error messages."""
        return _where(msg.connection.topic, msg.index, msg.timestamp, self.start_time)

    def decode(self, msg: BagMessage):
        """The message as a rosbags dataclass (what svsgan_core.io.rosio reads)."""
        try:
            return self.typestore.deserialize_cdr(msg.data, msg.connection.msgtype)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{self.path}: {self.where(msg)} cannot be decoded as {msg.connection.msgtype} "
                             f"(corrupt message): {type(exc).__name__}: {exc}") from None

    # -- diagnosis ------------------------------------------------------------------------------
    def _storage_files(self) -> list[Path]:
        return [self.source] if self.source.is_file() else sorted(
            p for p in self.source.iterdir() if p.suffix.lower().lstrip(".") in STORAGES)

    def _open_error(self, exc: Exception) -> str:
        """Why the bag cannot be opened, with how far its messages are intact where that can be found."""
        why = str(exc) if isinstance(exc, _Damage) else f"{type(exc).__name__}: {exc}"
        text = f"cannot open bag {self.path}: {why}"
        for file in self._storage_files():
            try:
                scan = _scan_mcap(file) if file.suffix == ".mcap" else _scan_db3(file)
            except Exception:  # noqa: BLE001 - the diagnosis is best effort; the error stands without it
                continue
            if scan is not None:
                salvage = "mcap recover" if file.suffix == ".mcap" else "sqlite3 .recover"
                return (f"{text}\n{file.name} is corrupt or truncated: {scan}. Re-record it, or salvage the "
                        f"intact part (e.g. with `{salvage}`)")
        return text


# --------------------------------------------------------------------------------------------------
# Finding where a damaged storage file breaks (only when rosbags cannot open it)


class _Damage(Exception):
    pass


def _scan_summary(counts: dict[str, int], last, start: int, problem: str) -> str:
    if last is None:
        return f"no message can be read ({problem})"
    return f"{sum(counts.values())} messages are intact, the last one {_where(*last, start)}; after it: {problem}"


class _Tally:
    """Messages seen so far while scanning a damaged file, per topic."""

    def __init__(self):
        self.counts: dict[str, int] = defaultdict(int)
        self.last = None
        self.start = 1 << 63

    def add(self, topic: str, timestamp: int) -> None:
        self.last = (topic, self.counts[topic], timestamp)
        self.counts[topic] += 1
        self.start = min(self.start, timestamp)

    def summary(self, problem: str) -> str:
        return _scan_summary(self.counts, self.last, self.start, problem)


_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _check_mcap_lengths(path: Path) -> None:
    """Walk the top-level records of an MCAP file by their 9-byte headers and refuse a declared length
    that runs past the end of the file. rosbags allocates what a record declares before reading it, so
    a garbage file that starts with the magic could ask for gigabytes (a MemoryError, or swap)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(8) != _MCAP_MAGIC:
            return  # not MCAP at all: rosbags says so
        pos = 8
        while pos + 9 <= size:
            f.seek(pos)
            head = f.read(9)
            (length,) = struct.unpack_from("<Q", head, 1)
            if length > size - pos - 9:
                raise _Damage(f"{path.name}: the record (opcode 0x{head[0]:02x}) declares {length} bytes at byte "
                              f"{pos}, but only {size - pos - 9} bytes follow; the file is corrupt or not MCAP")
            if head[0] == 0x02:  # the footer: the summary before it was walked too
                return
            pos += 9 + length


def _scan_db3(path: Path) -> str | None:
    con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    tally = _Tally()
    try:
        con.execute("PRAGMA writable_schema=ON")  # read a file shorter than its header says, up to the break
        topics = dict(con.execute("SELECT id, name FROM topics"))
        for topic_id, timestamp, _ in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            tally.add(topics.get(topic_id, f"<unknown topic id {topic_id}>"), timestamp)
    except sqlite3.DatabaseError as exc:
        return tally.summary(f"the database is damaged ({exc})")
    finally:
        con.close()
    return None


def _scan_mcap(path: Path) -> str | None:
    """Walk the records of an MCAP file until they stop making sense (mapped, not read: a bag can be
    larger than memory)."""
    with open(path, "rb") as f:
        if f.read(8) != _MCAP_MAGIC:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _walk_mcap(data)


def _walk_mcap(data) -> str | None:
    tally = _Tally()
    channels: dict[int, str] = {}

    def walk(buf: bytes, pos: int, end: int, top: bool) -> None:
        while pos < end:
            if pos + 9 > end:
                raise _Damage(f"a record header is cut off at byte {pos}")
            op = buf[pos]
            (length,) = struct.unpack_from("<Q", buf, pos + 1)
            body = pos + 9
            if body + length > end:
                if top and op == 0x06 and body + 40 <= end and struct.unpack_from("<I", buf, body + 28)[0] == 0:
                    try:  # an uncompressed chunk: its messages up to the cut are readable
                        walk(buf[body + 40:end], 0, end - body - 40, False)
                    except _Damage:
                        pass
                what = "the chunk" if op == 0x06 else f"the record (opcode 0x{op:02x})"
                raise _Damage(f"the file ends ({end} bytes) inside {what} that starts at byte {pos}" if top
                              else "the data breaks off inside a record")
            if op == 0x02 and top:  # footer
                return
            if op == 0x04:
                (cid,) = struct.unpack_from("<H", buf, body)
                (n,) = struct.unpack_from("<I", buf, body + 4)
                channels[cid] = buf[body + 8: body + 8 + n].decode("utf-8", "replace")
            elif op == 0x05:
                cid, _, log_time = struct.unpack_from("<HIQ", buf, body)
                tally.add(channels.get(cid, f"<unknown channel {cid}>"), log_time)
            elif op == 0x06 and top:
                (declared,) = struct.unpack_from("<Q", buf, body + 16)
                (n,) = struct.unpack_from("<I", buf, body + 28)
                compression = buf[body + 32: body + 32 + n].decode()
                (size,) = struct.unpack_from("<Q", buf, body + 32 + n)
                raw = _decompress(buf[body + 40 + n: body + 40 + n + size], compression, declared)
                walk(raw, 0, len(raw), False)
            pos = body + length
        if top:
            raise _Damage("the file ends without its summary and footer (was the recording interrupted?)")

    try:
        walk(data, 8, len(data), True)
    except (_Damage, struct.error, ValueError, LookupError) as exc:
        return tally.summary(str(exc) or type(exc).__name__)
    return None


#: the most a chunk may declare uncompressed for the diagnosis to unpack it (writers use 1-32 MiB)
MAX_CHUNK_BYTES = 1 << 30


def _decompress(data: bytes, compression: str, declared: int) -> bytes:
    """A chunk's records, at most the `declared` uncompressed size: a damaged or hostile chunk that
    unpacks to more (a decompression bomb) is damage, found without unpacking it all."""
    if declared > MAX_CHUNK_BYTES:
        raise _Damage(f"a chunk declares {declared} bytes uncompressed (more than {MAX_CHUNK_BYTES})")
    if not compression:
        return data
    if compression == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
        except ImportError:
            from backports import zstd
        unpack = zstd.ZstdDecompressor().decompress
    elif compression == "lz4":
        import lz4.frame

        unpack = lz4.frame.LZ4FrameDecompressor().decompress
    else:
        raise ValueError(f"unknown chunk compression {compression!r}")
    try:
        raw = unpack(data, max_length=declared + 1)
    except Exception as exc:  # noqa: BLE001 - each library has its own error type for broken data
        raise _Damage(f"a {compression} chunk cannot be unpacked ({type(exc).__name__}: {exc})") from None
    if len(raw) > declared:
        raise _Damage(f"a {compression} chunk unpacks to more than the {declared} bytes it declares")
    return raw


# --------------------------------------------------------------------------------------------------
# Writing


def check_destination(dest: str | os.PathLike, overwrite: bool, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse a destination that exists (unless `overwrite`) or that is, or overlaps, an input."""
    dest = Path(dest).expanduser().absolute()
    try:
        real_dest = dest.resolve()
    except (RuntimeError, OSError):  # RuntimeError before Python 3.13, OSError(ELOOP) after
        raise InputError(f"the output {dest} goes through a symlink loop; name another output") from None
    for src in inputs:
        src = Path(src).expanduser().absolute()
        real_src = src.resolve()
        if real_dest == real_src or real_src in real_dest.parents or real_dest in real_src.parents:
            raise InputError(f"the output {dest} would overwrite or nest with the input {src}; "
                             "the input is never modified: name another output")
    if (dest.exists() or dest.is_symlink()) and not overwrite:
        raise InputError(f"{dest} exists; pass --overwrite to replace it")
    return dest


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def partial_dirs(dest: str | os.PathLike) -> list[Path]:
    """Temporary folders of writers of `dest` (this process's and others', alive or not)."""
    dest = Path(dest).expanduser().absolute()
    if not dest.parent.is_dir():
        return []
    prefix = f".{dest.name}{_PARTIAL}"
    return sorted(p for p in dest.parent.iterdir() if p.name.startswith(prefix))


def writer_tag() -> str:
    """Who writes a partial folder: host and process. An output folder on shared storage (a Ray
    cluster's) holds partials of writers on several machines, and a process id is only meaningful on
    its own host."""
    return f"{socket.gethostname()}-{os.getpid()}"


def remove_stale_partials(dest: str | os.PathLike) -> None:
    """Delete what killed writers of this host left behind in `dest`'s folder, whatever output they
    were writing (folders named after a process that is gone), and say so: a kill -9 mid-conversion
    leaves a hidden folder as large as the output. A partial of another host is left alone: whether
    its writer still runs cannot be told from here."""
    parent = Path(dest).expanduser().absolute().parent
    if not parent.is_dir():
        return
    for folder in sorted(parent.glob(f".*{_PARTIAL}*")):
        match = re.search(rf"{re.escape(_PARTIAL)}(?:(.+)-)?(\d+)$", folder.name)  # no host: an older svsgan's
        if not match or match.group(1) not in (None, socket.gethostname()):
            continue
        pid = int(match.group(2))
        if pid != os.getpid() and not pid_alive(pid):
            print(f"svsgan: removing {folder}, left by an interrupted run (process {pid} is gone)",
                  file=sys.stderr, flush=True)
            shutil.rmtree(folder, ignore_errors=True)


class AtomicDirectory:
    """A folder built under a temporary name beside `dest` and renamed into place by `commit()`.

    A context manager: leaving it by an exception (KeyboardInterrupt included) removes the
    temporary folder, and a kill -9 leaves only the temporary folder, never `dest`.
    """

    def __init__(self, dest: str | os.PathLike, overwrite: bool = False, inputs: Iterable = ()):
        self.dest = check_destination(dest, overwrite, inputs)
        self.overwrite = overwrite
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.dest)
        self.partial = self.dest.parent / f".{self.dest.name}{_PARTIAL}{writer_tag()}"
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir()
        self.path = self.partial / self.dest.name  # what the caller fills (created by the caller)
        self.committed = False

    def commit(self) -> Path:
        _fsync_tree(self.path)
        if self.dest.exists() or self.dest.is_symlink():
            if not self.overwrite:
                raise InputError(f"{self.dest} appeared while this run was writing it; it was left alone "
                                 "(pass --overwrite to replace it)")
            os.rename(self.dest, self.partial / (self.dest.name + ".replaced"))
        os.rename(self.path, self.dest)
        _fsync_dir(self.dest.parent)
        shutil.rmtree(self.partial, ignore_errors=True)
        self.committed = True
        return self.dest

    def discard(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self) -> AtomicDirectory:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.discard()


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BagWriter:
    """A new bag (a rosbag2 folder) written atomically to `dest`; a context manager.

    `commit()` closes the bag and renames it into place; leaving the context without committing, or
    by an exception, deletes the partial bag. `version` is the rosbag2 metadata version: 8 (the
    oldest rosbags writes) or 9 (Jazzy's QoS format).
    """

    def __init__(self, dest: str | os.PathLike, storage: str = "mcap", *, version: int = 8,
                 overwrite: bool = False, inputs: Iterable = (), compression: tuple[str | None, str | None] = (None, None),
                 chunk_compression: bool = False):
        if storage not in STORAGES:
            raise InputError(f"unknown bag storage {storage!r}; choose from {', '.join(STORAGES)}")
        self.storage = storage
        self._dir = AtomicDirectory(dest, overwrite, inputs)
        self.dest = self._dir.dest
        try:
            self._writer = Writer(self._dir.path, version=version, storage_plugin=STORAGES[storage])
            mode, fmt = compression
            if mode in ("file", "message") and fmt == "zstd":
                self._writer.set_compression(CompressionMode[mode.upper()], CompressionFormat.ZSTD)
            elif chunk_compression and storage == "mcap":
                self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
            self._writer.open()
        except BaseException:
            self._dir.discard()
            raise
        self._open = True
        self._definitions: dict[tuple[str, str], tuple[str, str]] = {}

    def add_topic(self, topic: str, msgtype: str, typestore, *, qos=(), msgdef: str | None = None,
                  digest: str | None = None, serialization_format: str = "cdr") -> Connection:
        """A new topic; its definition comes from `msgdef`/`digest` or else from `typestore`."""
        if not msgdef or not digest:
            msgdef, digest = self._definition(topic, msgtype, typestore, msgdef)
        return self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=digest,
                                           serialization_format=serialization_format,
                                           offered_qos_profiles=list(qos))

    def copy_topic(self, conn: Connection, typestore) -> Connection:
        """A topic like an input connection: same name, type, definition, serialization and QoS."""
        have = conn.msgdef.data if conn.msgdef.format != MessageDefinitionFormat.NONE else None
        return self.add_topic(conn.topic, conn.msgtype, typestore, qos=conn.ext.offered_qos_profiles,
                              msgdef=have, digest=conn.digest or None,
                              serialization_format=conn.ext.serialization_format)

    def _definition(self, topic: str, msgtype: str, typestore, msgdef: str | None) -> tuple[str, str]:
        key = (msgtype, msgdef or "")
        if key not in self._definitions:
            if msgdef:
                store = get_typestore(Stores.EMPTY)
                try:
                    store.register(_types_from_definition(msgdef, msgtype))
                    self._definitions[key] = (msgdef, store.hash_rihs01(msgtype))
                except Exception:  # noqa: BLE001 - fall back to the distribution's definition below
                    pass
            if key not in self._definitions:
                if msgtype not in typestore.fielddefs:
                    raise InputError(f"topic {topic}: type {msgtype} has no definition in the bag and is not in "
                                     "the type store in use; name the recording's distribution with --typestore")
                self._definitions[key] = (msgdef or typestore.generate_msgdef(msgtype, ros_version=2)[0],
                                          typestore.hash_rihs01(msgtype))
        return self._definitions[key]

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def write(self, conn: Connection, timestamp: int, data: bytes | memoryview) -> None:
        self._writer.write(conn, timestamp, data)

    def commit(self) -> Path:
        self._writer.close()
        self._open = False
        return self._dir.commit()

    def abort(self) -> None:
        if self._open:
            self._open = False
            try:
                self._writer.abort()
            finally:
                self._dir.discard()
        else:
            self._dir.discard()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._dir.committed:
            self.abort()


def _types_from_definition(msgdef: str, msgtype: str) -> dict:
    """Parse a stored definition (ros2msg with its dependencies, or ros2idl), as rosbags' AnyReader does."""
    sep = "=" * 80 + "\n"
    if msgdef.startswith(f"{sep}IDL: "):
        types: dict = {}
        for part in msgdef.split(sep)[1:]:
            types.update(get_types_from_idl(part.split("\n", 1)[1]))
        return types
    return get_types_from_msg(msgdef, msgtype)
