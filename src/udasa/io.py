"""JSONL artifacts: strict readers with file/line/field errors, crash-safe writers.

Every stage writes either one file atomically (temp file + rename) or appends one JSON
record per line with a flush after each batch. A process killed mid-write leaves at most
one unterminated last line; `JsonlAppender` drops it on reopen, so a rerun continues.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from udasa.errors import InputError


def iter_jsonl(path: str | os.PathLike, *, partial_tail_ok: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-empty line; streams, never loads the file.

    Raises `InputError` naming the file and line for invalid UTF-8, invalid JSON or a line
    that is not a JSON object. With ``partial_tail_ok`` an unterminated, unparsable last
    line (a killed writer) is skipped with a warning instead.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file does not exist", path=str(path))
    with open(path, "rb") as f:
        prev: tuple[int, bytes] | None = None
        for lineno, raw in enumerate(f, start=1):
            if prev is not None:
                yield prev[0], _parse_line(path, *prev)
            prev = (lineno, raw)
        if prev is not None:
            lineno, raw = prev
            if partial_tail_ok and not raw.endswith(b"\n"):
                try:
                    yield lineno, _parse_line(path, lineno, raw)
                except InputError:
                    warnings.warn(f"{path}:{lineno}: dropping a partial last line (interrupted write)")
            else:
                rec = _parse_line(path, lineno, raw)
                if rec is not None:
                    yield lineno, rec


def _parse_line(path: Path, lineno: int, raw: bytes):
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"invalid UTF-8 at byte {e.start}", path=str(path), line=lineno) from None
    if not text.strip():
        return None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg} at column {e.colno})", path=str(path), line=lineno) from None
    if not isinstance(rec, dict):
        raise InputError(f"expected a JSON object, got {type(rec).__name__}", path=str(path), line=lineno)
    return rec


def read_jsonl(path: str | os.PathLike, *, partial_tail_ok: bool = False) -> list[tuple[int, dict]]:
    return [(n, r) for n, r in iter_jsonl(path, partial_tail_ok=partial_tail_ok) if r is not None]


def require(rec: dict, field: str, types: type | tuple[type, ...], *, path: str, line: int,
            nonempty: bool = False) -> Any:
    """Return ``rec[field]`` or raise `InputError` naming file, line and field."""
    if field not in rec:
        raise InputError("missing", path=path, line=line, field=field)
    value = rec[field]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise InputError(f"expected {_tname(types)}, got bool", path=path, line=line, field=field)
    if not isinstance(value, types):
        raise InputError(f"expected {_tname(types)}, got {type(value).__name__}", path=path, line=line, field=field)
    if nonempty and (len(value) == 0 or (isinstance(value, str) and not value.strip())):
        raise InputError("is empty", path=path, line=line, field=field)
    return value


def prompt_format(rec: dict, *, path: str, line: int) -> str:
    """A record's prompt format: "chat" (the default: a dialogue sent through the chat template) or
    "plain" (a text the model continues as is); anything else raises `InputError`."""
    fmt = rec.get("format", "chat")
    if fmt not in ("chat", "plain"):
        raise InputError(f"must be 'chat' or 'plain', got {fmt!r}"[:200], path=path, line=line, field="format")
    return fmt


def _tname(types) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


class JsonlAppender:
    """Append-only JSONL writer for resumable stages.

    On open it reads the keys already there (dropping a partial last line by truncating the
    file back to the last newline) so the caller can skip finished work. Only keys and the
    first record are kept in memory, so resuming a huge file stays cheap.
    """

    def __init__(self, path: str | os.PathLike, key: str | Callable[[dict], Any] = "id"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = key if callable(key) else (lambda r, k=key: r[k])
        self.done: set = set()
        self.first: dict | None = None
        if self.path.exists():
            _truncate_partial_tail(self.path)
            for lineno, rec in iter_jsonl(self.path):
                if rec is not None:
                    self.done.add(self._key(rec))
                    self.first = self.first or rec
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, records: list[dict]) -> None:
        for rec in records:
            self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.done.add(self._key(rec))
            self.first = self.first or rec
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _truncate_partial_tail(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        # walk back to the last newline; everything after it is an interrupted write
        pos = size
        chunk = 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            idx = buf.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        else:
            keep = 0
        warnings.warn(f"{path}: dropping {size - keep} bytes of a partial last line (interrupted write)")
        f.truncate(keep)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a whole file so that readers see either the old or the new content, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
