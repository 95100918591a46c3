"""The logical export file format: a versioned gzip of JSON lines, how it is written and read back.

A logical export is a gzip of JSON lines. Line 1 is a header::

    {"format": "semcache-backup", "version": 1, "created_at": ..., "index_name": ..., "store": "local|redis",
     "embedder": {"provider", "model", "dimension"} | null, "vectors": bool, "count": N, ...}

then one object per entry (key, scope, prompt, response, metadata, created_at, expires_at, ttl_remaining,
hit_count and, when ``vectors`` is true, ``vector``: base64 of little-endian float32). ``expires_at`` is
what an import honours, so an entry that expired since the export is skipped and counted, never revived.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from engine.atomic import atomic_path
from engine.errors import InvalidInputError, NotFoundError
from engine.models import CacheEntry, EmbedderIdentity

FORMAT = "semcache-backup"
VERSION = 1
#: Entries read from the store, or written to it, per batch (one embedding call per batch on import).
#: Export and import both read it as ``format.BATCH`` when they run: set it (or patch it in a test) here.
BATCH = 256

Progress = Callable[[int, int], None]

_BAD_FILE_HINT = "use a file written by `semcache-tui backup create` or `backup export`"
_DAMAGED_HINT = "the file was truncated or altered; pick another one with `semcache-tui backup list`"


# -- writing ----------------------------------------------------------------------------------------------


def _encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _entry_line(entry: CacheEntry, now: float, vector: np.ndarray | None) -> str:
    body: dict[str, Any] = {
        "key": entry.key,
        "scope": entry.scope,
        "prompt": entry.prompt,
        "response": entry.response,
        "metadata": entry.metadata,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
        "ttl_remaining": entry.remaining_ttl(now),
        "hit_count": entry.hit_count,
    }
    if vector is not None:
        body["vector"] = _encode_vector(vector)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"


def _write_gzip(path: Path, header: dict[str, Any], body: IO[str]) -> None:
    with (
        atomic_path(path) as partial,
        partial.open("wb") as raw,
        gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as gz,
    ):
        gz.write((json.dumps(header, separators=(",", ":")) + "\n").encode("utf-8"))
        body.seek(0)
        while chunk := body.read(1 << 20):
            gz.write(chunk.encode("utf-8"))


# -- reading ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Header:
    identity: EmbedderIdentity | None
    vectors: bool
    count: int
    raw: dict[str, Any]


def read_header(path: Path | str) -> dict[str, Any]:
    """The header of a backup file, checked (format, version, fields); raises ``InvalidInputError``."""
    path = Path(path)
    with _open_backup(path) as lines:
        return _parse_header(path, next(lines, "")).raw


#: The longest line an import reads (16 MiB): an entry at the prompt and response limits, its metadata
#: and a 4096-dimension vector take well under 1 MiB, and a longer line would be held whole in memory.
MAX_LINE_BYTES = 16 << 20
#: Blank lines an import tolerates: exports write none, and an unbounded run of them is only a way to make
#: validation take forever.
MAX_BLANK_LINES = 1000
#: The most decompressed bytes an import reads (64 GiB), whatever the file's count says.
MAX_BYTES = 64 << 30


@contextlib.contextmanager
def _open_backup(path: Path) -> Iterator[Iterator[str]]:
    if not path.is_file():
        raise NotFoundError(f"no backup file at {path}", "see `semcache-tui backup list`")
    try:
        handle = gzip.open(path, "rb")  # noqa: SIM115  (closed by the with below)
    except OSError as exc:
        raise InvalidInputError(f"{path} cannot be read: {exc.strerror or exc}", _BAD_FILE_HINT) from None
    # Only reading the file is guarded here: an error from the store while importing stays what it is.
    with handle:
        yield _guarded(path, handle)


def _guarded(path: Path, handle: gzip.GzipFile) -> Iterator[str]:
    """The file's lines, decoded, each read with a length limit so a huge line never sits in memory."""
    total = blank = 0
    number = 0
    try:
        while line := handle.readline(MAX_LINE_BYTES + 1):
            number += 1
            total += len(line)
            if len(line) > MAX_LINE_BYTES:
                raise InvalidInputError(
                    f"{path} is damaged: line {number} is longer than {MAX_LINE_BYTES:,} bytes",
                    _DAMAGED_HINT,
                )
            if total > MAX_BYTES:
                raise InvalidInputError(
                    f"{path} holds more than {MAX_BYTES:,} bytes of data, the most an import reads",
                    "split the cache into several exports (`backup export --scope`)",
                )
            if not line.strip():
                blank += 1
                if blank > MAX_BLANK_LINES:
                    raise InvalidInputError(
                        f"{path} is damaged: more than {MAX_BLANK_LINES} blank lines", _DAMAGED_HINT
                    )
            yield line.decode("utf-8")
    except gzip.BadGzipFile:
        raise InvalidInputError(f"{path} is not a gzip file", _BAD_FILE_HINT) from None
    except (EOFError, zlib.error, UnicodeDecodeError) as exc:
        reason = "it ends early" if isinstance(exc, EOFError) else "its data is corrupted"
        raise InvalidInputError(f"{path} is damaged: {reason}", _DAMAGED_HINT) from None
    except OSError as exc:  # CRC or length check at the end of the gzip stream
        raise InvalidInputError(f"{path} is damaged: {exc}", _DAMAGED_HINT) from None


def _parse_header(path: Path, line: str) -> _Header:
    try:
        header = json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not a semcache backup (no header on line 1)", _BAD_FILE_HINT)
    version = header.get("version")
    if version != VERSION:
        raise InvalidInputError(
            f"{path} is a version {version} backup; this semcache reads version {VERSION}"
            if isinstance(version, int)
            # A version "1" (a string) must not read as the version 1 this semcache reads.
            else f"{path} has version {version!r} in its header; this semcache reads version {VERSION}, a number",
            "import it with the semcache-tui release that wrote it, or upgrade this one",
        )
    count, vectors, embedder = header.get("count"), header.get("vectors"), header.get("embedder")
    try:
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or count < 0
            or not isinstance(vectors, bool)
        ):
            raise ValueError
        identity = EmbedderIdentity.from_dict(embedder) if embedder is not None else None
        if identity is not None and identity.dimension < 1:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError(f"{path} has a damaged header", _DAMAGED_HINT) from None
    if vectors and identity is None:
        raise InvalidInputError(f"{path} has vectors but names no embedder", _DAMAGED_HINT)
    return _Header(identity, vectors, count, header)


def _parse_entry(line: str, header: _Header) -> tuple[CacheEntry, np.ndarray | None]:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    for name in ("scope", "prompt", "response"):
        if not isinstance(data.get(name), str):
            raise ValueError(f"{name} is missing")
    try:  # JSON can spell a lone surrogate ("\ud800"), which no store can keep as text
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("it holds a lone surrogate, which is not text") from None
    entry = CacheEntry(
        key=str(data.get("key", "")),
        scope=data["scope"],
        prompt=data["prompt"],
        response=data["response"],
        metadata=data.get("metadata", {}),
        created_at=data.get("created_at"),  # type: ignore[arg-type]  # checked by prepare_restore
        expires_at=data.get("expires_at"),
        hit_count=data.get("hit_count", 0),
    )
    vector = None
    if header.vectors:
        assert header.identity is not None
        raw = base64.b64decode(str(data.get("vector", "")), validate=True)
        vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if vector.shape != (header.identity.dimension,) or not np.all(np.isfinite(vector)):
            raise ValueError("its vector has the wrong size")
    return entry, vector


def _entries(
    path: Path, header: _Header, lines: Iterator[str]
) -> Iterator[tuple[CacheEntry, np.ndarray | None]]:
    number = 1
    for line in lines:
        number += 1
        if not line.strip():
            continue
        try:
            yield _parse_entry(line, header)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidInputError(
                f"{path} is damaged: line {number} is unreadable ({exc})", _DAMAGED_HINT
            ) from None
