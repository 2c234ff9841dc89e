"""Rosbag2 files with the ``rosbags`` library: write (definitions embedded, regular flushes), read, recover.

Why this module exists:
- The recorder must write bags that any ROS 2 distro can read back, so every connection carries its full
  message definition (taken from the ``.msg`` files of the running ROS install, falling back to the rosbags
  type store) and its offered QoS.
- A recorder that is killed must not lose what it already acknowledged: :meth:`BagWriter.flush` closes the
  pending MCAP chunk and fsyncs it (or commits the sqlite3 transaction).
- Readers must not depend on the reader's ROS distro: :class:`BagReader` builds its type store from the
  definitions stored in the bag (Humble, Jazzy and Kilted bags alike), falling back to the built-in store
  only for bags without definitions (Humble sqlite3).
- :func:`recover_bag` salvages a bag whose writer never closed it (no ``metadata.yaml``, no MCAP footer).
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import (
    MessageDefinitionFormat,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.rosbag2.metadata import parse_qos
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Nodetype, Typestore

__all__ = [
    "STORAGES",
    "BagError",
    "BagReader",
    "BagWriter",
    "RecoveryReport",
    "find_bags",
    "make_qos",
    "recover_bag",
    "resolve_msgdef",
]

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_MSGDEF_SEP = "=" * 80 + "\n"


class BagError(Exception):
    """A bag cannot be written, opened or recovered; the message says why and what to do."""


# --------------------------------------------------------------------------------------------------
# Message definitions
# --------------------------------------------------------------------------------------------------

def msg_search_dirs() -> list[Path]:
    """``share`` directories that may hold ``<pkg>/msg/<Name>.msg`` (ament prefixes, then this Python's prefix)."""
    dirs: list[Path] = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share")
    dirs.append(Path(sys.prefix) / "share")
    return dirs


def _find_msg_file(msgtype: str, search_dirs: Sequence[Path]) -> Path | None:
    pkg, kind, name = msgtype.split("/")
    for base in search_dirs:
        candidate = base / pkg / kind / f"{name}.msg"
        if candidate.is_file():
            return candidate
    return None


def _field_deps(fields: Sequence[tuple[str, Any]]) -> list[str]:
    """Type names referenced by a rosbags field list (nested through arrays/sequences)."""
    deps = []
    for _, desc in fields:
        node, arg = desc
        while node in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            node, arg = arg[0]
        if node == Nodetype.NAME:
            deps.append(arg)
    return deps


@functools.lru_cache(maxsize=256)
def _resolve_cached(msgtype: str, dirs: tuple[Path, ...]) -> tuple[str, str]:
    builtin = get_typestore(Stores.LATEST)
    typs: dict[str, Any] = {}
    todo = [msgtype]
    while todo:
        name = todo.pop()
        if name in typs:
            continue
        path = _find_msg_file(name, dirs)
        if path is not None:
            typs.update(get_types_from_msg(path.read_text(encoding="utf-8"), name))
        elif name in builtin.fielddefs:
            typs[name] = builtin.fielddefs[name]
        else:
            raise BagError(
                f"no message definition for {name!r} (needed by {msgtype!r}): not in the rosbags type store "
                f"and no {name.split('/')[-1]}.msg under {[str(d) for d in dirs]}; source your workspace "
                "(install/setup.bash) so AMENT_PREFIX_PATH names the package that defines it"
            )
        todo.extend(_field_deps(typs[name][1]))
    store = get_typestore(Stores.EMPTY)
    store.register(typs)
    msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
    return msgdef, store.hash_rihs01(msgtype)


def resolve_msgdef(msgtype: str, search_dirs: Sequence[Path] | None = None) -> tuple[str, str]:
    """Full ``ros2msg`` definition text (with dependent ``MSG:`` blocks) and RIHS01 hash of ``msgtype``.

    Args:
        msgtype: e.g. ``"sensor_msgs/msg/Image"``.
        search_dirs: ``share`` directories to look for ``.msg`` files (default :func:`msg_search_dirs`).
    Raises:
        BagError: the type (or a dependency) is defined nowhere.
    """
    if msgtype.count("/") != 2:
        raise BagError(f"message type must look like 'pkg/msg/Name', got {msgtype!r}")
    dirs = tuple(search_dirs) if search_dirs is not None else tuple(msg_search_dirs())
    return _resolve_cached(msgtype, dirs)


def make_qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Qos:
    """A rosbags ``Qos`` record (what ``metadata.yaml`` stores as ``offered_qos_profiles``)."""
    zero = QosTime(0, 0)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

class BagWriter:
    """A rosbag2 writer (rosbags ``Writer``) that can be flushed so a hard kill loses only the last interval.

    ``flush()`` uses two internals of rosbags 0.11 (``McapWriter.close_chunk`` + its file object, and the
    ``Sqlite3Writer`` connection); they are checked at open so an incompatible rosbags fails loudly.
    """

    def __init__(self, path: str | Path, storage: str = "mcap", version: int = 9,
                 compress: bool = False, fsync: bool = True) -> None:
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        if version not in (8, 9):
            raise BagError(f"rosbags can write rosbag2 metadata version 8 or 9 only, got {version}")
        self.path = Path(path)
        self.storage = storage
        self.fsync = fsync
        self._writer = Writer(self.path, version=version, storage_plugin=STORAGES[storage])
        if compress:
            mode = CompressionMode.STORAGE if storage == "mcap" else CompressionMode.MESSAGE
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        self._writer.open()
        st = self._writer.storage
        ok = (hasattr(st, "close_chunk") and hasattr(st, "bio")) if storage == "mcap" else hasattr(st, "conn")
        if not ok:
            self._writer.abort()
            raise BagError("this rosbags version has no flushable storage writer (tested with rosbags 0.11)")
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.flushed_counts: dict[str, int] = {}
        self.bytes_written = 0
        self.closed = False

    @property
    def topics(self) -> dict[str, str]:
        """Topic name -> message type of every connection added so far."""
        return {t: c.msgtype for t, c in self._conns.items()}

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = (), msgdef: str | None = None,
                  rihs01: str | None = None) -> None:
        """Add a connection; the definition is resolved with :func:`resolve_msgdef` unless given."""
        if topic in self._conns:
            return
        if msgdef is None or not rihs01:
            msgdef, rihs01 = resolve_msgdef(msgtype) if msgdef is None else (msgdef, _hash_from_msgdef(
                msgdef, msgtype))
        self._conns[topic] = self._writer.add_connection(
            topic, msgtype, msgdef=msgdef, rihs01=rihs01, offered_qos_profiles=list(qos))
        self.counts[topic] = 0
        self.flushed_counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Write one serialized (CDR) message of a topic added with :meth:`add_topic`."""
        conn = self._conns.get(topic)
        if conn is None:
            raise BagError(f"topic {topic!r} was not added to the bag")
        self._writer.write(conn, int(timestamp_ns), data)
        self.counts[topic] += 1
        self.bytes_written += len(data)

    def flush(self) -> None:
        """Make every message written so far durable on disk (readable after a hard kill via recover)."""
        if self.closed:
            return
        st = self._writer.storage
        if self.storage == "mcap":
            if st.chunk.bio.tell():
                st.close_chunk()
            st.bio.flush()
            if self.fsync:
                os.fsync(st.bio.fileno())
        else:
            st.conn.commit()
        self.flushed_counts = dict(self.counts)

    def set_custom_data(self, key: str, value: str) -> None:
        """Store a string in ``metadata.yaml`` ``custom_data``."""
        self._writer.set_custom_data(key, value)

    def close(self) -> None:
        """Finish the bag (MCAP summary/footer or sqlite3 commit) and write ``metadata.yaml``."""
        if self.closed:
            return
        self._writer.close()
        self.closed = True
        self.flushed_counts = dict(self.counts)

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hash_from_msgdef(msgdef: str, msgtype: str) -> str:
    store = _store_from_definitions([(msgtype, "ros2msg", msgdef)])
    return store.hash_rihs01(msgtype)


def _store_from_definitions(defs: Sequence[tuple[str, str, str]]) -> Typestore:
    """A type store holding the types of ``(msgtype, encoding, text)`` definitions (no hash check)."""
    typs: dict[str, Any] = {}
    for msgtype, encoding, text in defs:
        if not text:
            continue
        if encoding == "ros2idl" or encoding == "omgidl" or text.startswith(_MSGDEF_SEP + "IDL: "):
            if text.startswith(_MSGDEF_SEP + "IDL: "):
                for block in text.split(_MSGDEF_SEP)[1:]:
                    typs.update(get_types_from_idl(block.split("\n", 1)[1]))
            else:
                typs.update(get_types_from_idl(text))
        else:
            typs.update(get_types_from_msg(text, msgtype))
    store = get_typestore(Stores.EMPTY)
    store.register(typs)
    return store


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------

def _storage_file(path: Path) -> Path | None:
    for suffix in (".mcap", ".db3"):
        files = sorted(path.glob(f"*{suffix}"))
        if files:
            return files[0]
    return None


def find_bags(paths: Sequence[str | Path]) -> list[Path]:
    """Expand paths into bags: a bag directory, a ``.mcap``/``.db3`` file, or a folder searched recursively.

    A bag directory is one holding ``metadata.yaml`` or a storage file. Results are sorted and unique.
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise BagError(f"{p}: no such file or directory")
        if p.is_file():
            found.append(p)
        elif (p / "metadata.yaml").exists() or _storage_file(p) is not None:
            found.append(p)
        else:
            for sub in sorted(p.rglob("*")):
                if sub.is_dir() and ((sub / "metadata.yaml").exists() or _storage_file(sub) is not None):
                    if not any(parent in found for parent in sub.parents):
                        found.append(sub)
    out: list[Path] = []
    for p in found:
        if p not in out:
            out.append(p)
    return out


@dataclass
class BagReader:
    """Read a rosbag2 bag (directory, ``.mcap`` or ``.db3``) with the message definitions it stores.

    Use as a context manager. ``topics`` maps topic -> message type. ``messages(topics)`` yields
    ``(topic, bag_timestamp_ns, rawdata)`` in time order; ``deserialize(raw, msgtype)`` decodes them.
    """

    path: Path
    _reader: Any = field(default=None, init=False, repr=False)
    _store: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def __enter__(self) -> BagReader:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the bag; a bag that was never closed raises :class:`BagError` naming the recovery command."""
        p = self.path
        if p.is_dir() and not (p / "metadata.yaml").exists():
            raise BagError(
                f"{p}: no metadata.yaml, the recording was not closed (recorder killed?); "
                f"run `vjepa-dataset recover {p}` to salvage it")
        try:
            self._reader = Reader(p)
            self._reader.open()
        except Exception as exc:  # rosbags raises several types (ReaderError, KeyError, sqlite3 errors ...)
            self._reader = None
            raise BagError(f"{p}: unreadable bag (truncated or corrupt): {exc}; if a recorder was killed "
                           f"while writing it, try `vjepa-dataset recover {p}`") from exc
        conns = self._reader.connections
        defs = [(c.msgtype, "ros2idl" if c.msgdef.format == MessageDefinitionFormat.IDL else "ros2msg",
                 c.msgdef.data) for c in conns if c.msgdef.format != MessageDefinitionFormat.NONE]
        try:
            self._store = _store_from_definitions(defs)
        except Exception as exc:
            raise BagError(f"{p}: message definitions stored in the bag do not parse: {exc}") from exc
        builtin = get_typestore(Stores.LATEST)
        missing = {c.msgtype: builtin.fielddefs[c.msgtype] for c in conns
                   if c.msgtype not in self._store.fielddefs and c.msgtype in builtin.fielddefs}
        if missing:  # bags without definitions (Humble sqlite3): use the built-in definitions
            todo = list(missing)
            while todo:
                for dep in _field_deps(builtin.fielddefs[todo.pop()][1]):
                    if dep not in missing and dep not in self._store.fielddefs:
                        missing[dep] = builtin.fielddefs[dep]
                        todo.append(dep)
            self._store.register(missing)

    def close(self) -> None:
        """Close the underlying reader."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def topics(self) -> dict[str, str]:
        """Topic name -> message type."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    @property
    def message_counts(self) -> dict[str, int]:
        """Topic name -> number of messages."""
        counts: dict[str, int] = {}
        for c in self._reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        return counts

    def messages(self, topics: Sequence[str] | None = None,
                 start_ns: int | None = None, stop_ns: int | None = None) -> Iterator[tuple[str, int, bytes]]:
        """Yield ``(topic, bag_timestamp_ns, rawdata)`` for the given topics (all if None), time ordered."""
        conns = [c for c in self._reader.connections if topics is None or c.topic in topics]
        if not conns:
            return
        try:
            for conn, ts, raw in self._reader.messages(connections=conns, start=start_ns, stop=stop_ns):
                yield conn.topic, ts, raw
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"{self.path}: reading messages failed (truncated or corrupt bag): {exc}") from exc

    def deserialize(self, raw: bytes | memoryview, msgtype: str) -> Any:
        """Decode a CDR message with the bag's own definitions."""
        if msgtype not in self._store.fielddefs:
            raise BagError(f"{self.path}: no definition for {msgtype!r} in the bag or the built-in store")
        return self._store.deserialize_cdr(raw, msgtype)


# --------------------------------------------------------------------------------------------------
# Recovery
# --------------------------------------------------------------------------------------------------

@dataclass
class RecoveryReport:
    """What :func:`recover_bag` salvaged: output path, messages per topic, and notes on what was cut."""

    source: Path
    output: Path
    counts: dict[str, int]
    notes: list[str]

    @property
    def messages(self) -> int:
        """Total messages salvaged."""
        return sum(self.counts.values())


_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _read_str(buf: io.BytesIO) -> str:
    (n,) = struct.unpack("<I", buf.read(4))
    return buf.read(n).decode("utf-8")


def _decompress(data: bytes, compression: str) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        if sys.version_info >= (3, 14):
            from compression import zstd
        else:
            from backports import zstd
        return zstd.decompress(data)
    if compression == "lz4":
        from lz4.frame import decompress

        return decompress(data)
    raise BagError(f"unsupported MCAP chunk compression {compression!r}")


def _scan_mcap_records(stream: io.BufferedIOBase | io.BytesIO, out: dict[str, Any], notes: list[str]) -> bool:
    """Parse MCAP records from ``stream`` into ``out`` (schemas/channels/messages); False at truncation."""
    while True:
        head = stream.read(9)
        if len(head) == 0:
            return True
        if len(head) < 9:
            notes.append("file ends inside a record header (cut off)")
            return False
        op, length = head[0], struct.unpack("<Q", head[1:])[0]
        body = stream.read(length)
        if len(body) < length:
            notes.append(f"last record (opcode 0x{op:02x}) is cut off: {len(body)} of {length} bytes")
            return False
        buf = io.BytesIO(body)
        if op == 0x03:  # Schema
            (sid,) = struct.unpack("<H", buf.read(2))
            name, encoding = _read_str(buf), _read_str(buf)
            (n,) = struct.unpack("<I", buf.read(4))
            out["schemas"][sid] = (name, encoding, buf.read(n).decode("utf-8"))
        elif op == 0x04:  # Channel
            cid, sid = struct.unpack("<HH", buf.read(4))
            topic, _enc = _read_str(buf), _read_str(buf)
            (mlen,) = struct.unpack("<I", buf.read(4))
            meta = io.BytesIO(buf.read(mlen))
            qos = ""
            while meta.tell() < mlen:
                key, value = _read_str(meta), _read_str(meta)
                if key == "offered_qos_profiles":
                    qos = value
            out["channels"][cid] = (topic, sid, qos)
        elif op == 0x05:  # Message
            cid, _seq, log_time, _pub = struct.unpack("<HIQQ", buf.read(22))
            out["messages"].append((cid, log_time, buf.read()))
        elif op == 0x06:  # Chunk
            _start, _end, usize, _crc = struct.unpack("<QQQI", buf.read(28))
            compression = _read_str(buf)
            (clen,) = struct.unpack("<Q", buf.read(8))
            try:
                records = _decompress(buf.read(clen), compression)
            except Exception as exc:
                notes.append(f"a chunk does not decompress ({exc}); stopped there")
                return False
            if len(records) != usize:
                notes.append("a chunk has the wrong size; stopped there")
                return False
            if not _scan_mcap_records(io.BytesIO(records), out, notes):
                return False
        elif op in (0x02, 0x0F):  # Footer / DataEnd: the data section is complete
            return True


def _read_mcap(path: Path, notes: list[str]) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, int, bytes]]]:
    out: dict[str, Any] = {"schemas": {}, "channels": {}, "messages": []}
    with path.open("rb") as f:
        if f.read(8) != _MCAP_MAGIC:
            raise BagError(f"{path}: not an MCAP file (bad magic)")
        _scan_mcap_records(f, out, notes)
    topics = []
    for _cid, (topic, sid, qos) in sorted(out["channels"].items()):
        if sid not in out["schemas"]:
            notes.append(f"channel {topic} has no schema; skipped")
            continue
        name, encoding, text = out["schemas"][sid]
        topics.append((topic, name, encoding, qos))
    by_id = {cid: ch[0] for cid, ch in out["channels"].items()}
    msgs = [(by_id[cid], t, data) for cid, t, data in out["messages"] if cid in by_id]
    defs = {name: (enc, text) for name, enc, text in out["schemas"].values()}
    return [(t, n, defs[n][0] + "\n" + defs[n][1], q) for t, n, _e, q in topics], msgs


def _read_sqlite(path: Path) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, int, bytes]]]:
    with tempfile.TemporaryDirectory() as tmp:
        # Work on a copy: opening the original would roll back its journal in place.
        copy = Path(tmp) / path.name
        shutil.copy2(path, copy)
        for extra in ("-journal", "-wal", "-shm"):
            side = Path(str(path) + extra)
            if side.exists():
                shutil.copy2(side, Path(str(copy) + extra))
        conn = sqlite3.connect(str(copy))
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            defs: dict[str, tuple[str, str]] = {}
            if "message_definitions" in tables:
                for t, enc, text in conn.execute(
                        "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
                    defs[t] = (enc, text)
            cols = [r[1] for r in conn.execute("PRAGMA table_info(topics)")]
            qcol = "offered_qos_profiles" if "offered_qos_profiles" in cols else "''"
            topic_rows = conn.execute(f"SELECT id, name, type, {qcol} FROM topics").fetchall()
            names = {tid: name for tid, name, _, _ in topic_rows}
            topics = [(name, typ, "\n".join(defs.get(typ, ("", ""))), qos or "")
                      for _tid, name, typ, qos in topic_rows]
            msgs = [(names[tid], ts, bytes(data)) for tid, ts, data in conn.execute(
                "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp") if tid in names]
        except sqlite3.DatabaseError as exc:
            raise BagError(f"{path}: sqlite3 database is unreadable: {exc}") from exc
        finally:
            conn.close()
    return topics, msgs


def recover_bag(source: str | Path, output: str | Path | None = None) -> RecoveryReport:
    """Salvage an unclosed or truncated bag into a new, complete bag; the source is never modified.

    MCAP: every complete record up to the cut is kept (a recorder flushing each second loses at most the last
    second). sqlite3: every committed message is kept. Message definitions and QoS are carried over; an
    ``episode.json`` sidecar is copied with ``"recovered": true``.

    Args:
        source: bag directory or storage file (``.mcap``/``.db3``).
        output: new bag directory (default: ``<source>_recovered`` beside it); must not exist.
    """
    src = Path(source)
    storage_file = src if src.is_file() else _storage_file(src)
    if storage_file is None:
        raise BagError(f"{src}: no .mcap or .db3 file to recover")
    bag_dir = src if src.is_dir() else src.parent
    out = Path(output) if output is not None else bag_dir.with_name(bag_dir.name + "_recovered")
    if out.exists():
        raise BagError(f"{out} exists already; pass another output path")
    notes: list[str] = []
    if storage_file.suffix == ".mcap":
        topics, msgs = _read_mcap(storage_file, notes)
        storage = "mcap"
    else:
        topics, msgs = _read_sqlite(storage_file)
        storage = "sqlite3"
    writer = BagWriter(out, storage=storage, fsync=False)
    try:
        for topic, msgtype, enc_def, qos in topics:
            encoding, _, text = enc_def.partition("\n")
            qos_list = parse_qos(qos) if qos else []
            if text and encoding in ("ros2msg", ""):
                writer.add_topic(topic, msgtype, qos=qos_list, msgdef=text,
                                 rihs01=_hash_from_msgdef(text, msgtype))
            else:
                writer.add_topic(topic, msgtype, qos=qos_list)
        for topic, ts, data in msgs:
            writer.write(topic, ts, data)
        writer.set_custom_data("vjepa.recovered_from", str(storage_file))
    finally:
        writer.close()
    sidecar = bag_dir / "episode.json"
    if sidecar.exists():
        import json

        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        meta["recovered"] = True
        meta["recovery_notes"] = notes
        (out / "episode.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return RecoveryReport(src, out, dict(writer.counts), notes)
