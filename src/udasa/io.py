"""JSONL artifacts: strict readers with file/line/field errors, crash-safe writers.

Every stage writes either one file atomically (temp file + rename) or appends one JSON
record per line with a flush after each batch. A process killed mid-write leaves at most
one unterminated last line; `JsonlAppender` drops it on reopen, so a rerun continues, and
holds a lock so that a second writer is refused instead of interleaving lines.

Readers are bounded: a line longer than `MAX_LINE_BYTES`, JSON nested deeper than Python can
parse, or text with unpaired surrogate escapes is an error naming the file and line; a path
that is not a regular file (a device, a FIFO) is refused before it is read.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

from udasa.errors import InputError

MAX_LINE_BYTES = 16 << 20  # one record; the largest real ones (many samples with token log-probs) are ~1 MB
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def check_regular_file(path: str | os.PathLike, *, must_exist: bool = True) -> Path:
    """A path that is a regular file (or, with ``must_exist=False``, does not exist yet); anything else is an
    `InputError`: reading /dev/zero or a FIFO would never end."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if must_exist:
            raise InputError("file does not exist", path=str(path)) from None
        return path
    except OSError as e:
        raise InputError(f"cannot be read ({e.strerror})", path=str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise InputError(f"is {kind}; give a file path", path=str(path))
    return path


def check_distinct(out: str | os.PathLike, **inputs) -> None:
    """Refuse an output path that is one of the inputs (it would be overwritten or appended to)."""
    o = Path(out).resolve()
    for name, p in inputs.items():
        if p is not None and not isinstance(p, (list, tuple)) and isinstance(p, (str, os.PathLike)) and \
                Path(p).resolve() == o:
            raise InputError(f"is also the input --{name.replace('_', '-')}; write the output elsewhere",
                             path=str(out), field="out")


def iter_jsonl(path: str | os.PathLike, *, partial_tail_ok: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-empty line; streams, never loads the file.

    Raises `InputError` naming the file and line for invalid UTF-8, invalid JSON or a line
    that is not a JSON object. With ``partial_tail_ok`` an unterminated, unparsable last
    line (a killed writer) is skipped with a warning instead.
    """
    path = check_regular_file(path)
    with open(path, "rb") as f:
        prev: tuple[int, bytes] | None = None
        lineno = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"line longer than {MAX_LINE_BYTES >> 20} MiB; not a udasa record", path=str(path),
                                 line=lineno)
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
    except RecursionError:
        raise InputError("JSON nested too deeply", path=str(path), line=lineno) from None
    if not isinstance(rec, dict):
        raise InputError(f"expected a JSON object, got {type(rec).__name__}", path=str(path), line=lineno)
    if _SURROGATE_ESCAPE.search(text):
        try:  # a paired escape is fine; a lone one cannot be written back as UTF-8 or tokenized
            json.dumps(rec, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError("holds an unpaired surrogate escape (\\ud800-\\udfff): not valid Unicode text",
                             path=str(path), line=lineno) from None
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


ROLES = ("system", "user", "assistant")


def check_messages(rec: dict, *, path: str, line: int, fmt: str = "chat") -> list[dict]:
    """``rec["messages"]`` checked: a non-empty list of ``{role, content}`` (roles system/user/assistant) that
    ends with a non-empty user turn; a plain-text record is exactly one user turn (a system message would be
    silently dropped by plain-text training). Returns the messages with only those two keys. The prompt,
    samples, scores and pairs readers all use this one check."""
    msgs = require(rec, "messages", list, path=path, line=line, nonempty=True)
    for j, m in enumerate(msgs):
        f = f"messages[{j}]"
        if not isinstance(m, dict):
            raise InputError("must be an object with 'role' and 'content'", path=path, line=line, field=f)
        if m.get("role") not in ROLES:
            raise InputError(f"role must be one of {ROLES}, got {m.get('role')!r}"[:200], path=path, line=line,
                             field=f + ".role")
        if not isinstance(m.get("content"), str):
            raise InputError("must be a string", path=path, line=line, field=f + ".content")
    if msgs[-1]["role"] != "user":
        raise InputError("the last message must be from the user", path=path, line=line, field="messages")
    if not msgs[-1]["content"].strip():
        raise InputError("the last user message is empty", path=path, line=line, field="messages")
    if fmt == "plain" and len(msgs) != 1:
        raise InputError("a plain-text record is one text, not a dialogue (a system message or earlier turns would "
                         "be dropped)", path=path, line=line, field="format")
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def _tname(types) -> str:
    if isinstance(types, tuple):
        return " or ".join(t.__name__ for t in types)
    return types.__name__


class JsonlAppender:
    """Append-only JSONL writer for resumable stages.

    On open it reads the keys already there (dropping a partial last line by truncating the
    file back to the last newline) so the caller can skip finished work. Only keys, the first
    record and ``remember(record)`` per key are kept in memory, so resuming a huge file stays cheap.
    """

    def __init__(self, path: str | os.PathLike, key: str | Callable[[dict], Any] = "id",
                 remember: Callable[[dict], Any] | None = None, wait: bool = False):
        self.path = check_regular_file(path, must_exist=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = key if callable(key) else (lambda r, k=key: r[k])
        self.done: set = set()
        self.remembered: dict = {}  # key -> remember(record), e.g. the hash of the input it was made from
        self.first: dict | None = None
        self._lock = _lock(self.path, wait)
        try:
            if self.path.exists():
                _truncate_partial_tail(self.path)
                for lineno, rec in iter_jsonl(self.path):
                    if rec is not None:
                        try:
                            k = self._key(rec)
                        except (KeyError, TypeError):
                            raise InputError(f"holds a record that no udasa stage wrote (no {key!r} field); "
                                             "use another output path", path=str(self.path), line=lineno) from None
                        self.done.add(k)
                        if remember is not None:
                            self.remembered[k] = remember(rec)
                        self.first = self.first or rec
            self._f = open(self.path, "a", encoding="utf-8")
        except BaseException:
            self._lock.close()
            raise

    def write(self, records: list[dict]) -> None:
        for rec in records:
            self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.done.add(self._key(rec))
            self.first = self.first or rec
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()
        self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _lock(path: Path, wait: bool = False):
    """An exclusive lock on ``<path>.lock`` held while the file is written; released when the process ends,
    even by SIGKILL (flock), so a crashed run never leaves a stale lock. A stage's output refuses a second
    writer; a shared cache (``wait``) waits for it instead."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path.with_name(path.name + ".lock"), "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        f.close()
        raise InputError("another udasa process is writing this file; wait for it or use another output",
                         path=str(path)) from None
    return f


@contextlib.contextmanager
def held(path: Path):
    """Hold ``<path>.lock`` for the block, waiting while another process holds it."""
    f = _lock(path, wait=True)
    try:
        yield
    finally:
        f.close()


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


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (16 hex digits), streamed."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a whole file so that readers see either the old or the new content, never half."""
    path = check_regular_file(path, must_exist=False)  # never replace a device node or a folder
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; artifacts get the usual permissions
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


def read_text_file(path: str | os.PathLike, max_bytes: int = 4 << 20) -> str:
    """A small text file (recipe, task, spec, config) as UTF-8; errors name the file and line."""
    path = check_regular_file(path)
    if path.stat().st_size > max_bytes:
        raise InputError(f"is larger than {max_bytes >> 20} MiB; not a udasa config file", path=str(path))
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise InputError(f"invalid UTF-8 at byte {e.start}", path=str(path), line=line) from None


def yaml_loader():
    """PyYAML's safe loader without aliases: no code runs, and no alias bomb ("billion laughs") can make a
    few lines expand into gigabytes. Every udasa YAML reader uses it."""
    import yaml

    class NoAliasSafeLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in udasa files", mark)
            return super().compose_node(parent, index)

    return NoAliasSafeLoader


def load_yaml(text: str, source: str):
    """Parse YAML text with `yaml_loader`; a syntax error or an alias is an `InputError` naming file and line."""
    import yaml

    try:
        return yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(e, 'problem', None) or e}", path=source,
                         line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply", path=source) from None
