"""JSONL and file I/O: atomic writes, validated reads, resumable appends.

Every file tbr writes goes to a temporary name in the same folder and is renamed into place,
so a reader never sees half a file. Long stages append rows to a `.partial.jsonl` file and
rename it once complete; a kill leaves at most one torn last line, which `RowAppender` drops.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tbr.errors import TbrError

# field name -> accepted python types (checked on read, reported with file and line)
Schema = Mapping[str, tuple[type, ...]]


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TbrError(f"cannot create output folder: {e.strerror}", path=folder) from None
    if not os.access(folder, os.W_OK):
        raise TbrError("output folder is not writable", path=folder)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: Path | str) -> None:
    """mkstemp/mkdtemp make 0600/0700 entries: give files 0644 and folders 0755 (less the
    umask), as an ordinary open() would, so shared run folders stay readable."""
    mask = _umask()
    path = Path(path)
    if path.is_dir():
        for dirpath, _dirnames, filenames in os.walk(path):
            os.chmod(dirpath, 0o755 & ~mask)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644 & ~mask)
    else:
        os.chmod(path, 0o644 & ~mask)


@contextmanager
def atomic_path(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file name beside `path` for writers that want a file name (savefig ...):
    renamed onto `path` (mode 0644 less umask) when the block ends normally, removed otherwise.
    `suffix` lets writers that pick a format from the name see the right one."""
    path = Path(path)
    _check_writable(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """A temporary folder beside `path` (save_pretrained ...), put in place of `path` when the
    block ends normally and removed otherwise: `path` is never seen half-written."""
    path = Path(path)
    _check_writable(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        publish_mode(tmp)
        if path.exists():
            # os.replace cannot swap a non-empty folder: move the old one aside first
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    path = Path(path)
    _check_writable(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def dumps(obj: Any) -> str:
    """Deterministic JSON (sorted keys) so that equal content gives equal bytes."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, dumps(obj))


def _row_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


def write_jsonl(path: Path | str, rows: Iterable[Mapping[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(_row_line(r) for r in rows))


def _type_name(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "an object", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def parse_jsonl_line(text: str, path: Path | str, n: int) -> dict[str, Any]:
    """One JSONL line as an object; errors name the file and line."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise TbrError(f"not valid JSON ({e.msg}, column {e.colno})", path=path, line=n) from None
    if not isinstance(row, dict):
        raise TbrError("expected a JSON object per line", path=path, line=n)
    return row


def iter_jsonl(path: Path | str, schema: Schema | None = None,
               nonempty: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file, each checked against `schema`; errors name file, line and field."""
    path = Path(path)
    if not path.exists():
        raise TbrError("file not found", path=path)
    nonempty = tuple(nonempty)
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TbrError(f"not valid UTF-8 (byte {e.start})", path=path, line=n) from None
            if not text.strip():
                continue
            row = parse_jsonl_line(text, path, n)
            if schema:
                for field, types in schema.items():
                    if field not in row:
                        raise TbrError(f"missing; expected {_type_name(types)}", path=path, line=n, field=field)
                    if not isinstance(row[field], types) or (isinstance(row[field], bool) and bool not in types):
                        raise TbrError(f"expected {_type_name(types)}, got {json.dumps(row[field])[:40]}",
                                       path=path, line=n, field=field)
            for field in nonempty:
                if isinstance(row.get(field), str) and not row[field].strip():
                    raise TbrError("must not be empty", path=path, line=n, field=field)
            yield row


def read_jsonl(path: Path | str, schema: Schema | None = None, nonempty: Iterable[str] = (),
               unique_id: bool = False) -> list[dict[str, Any]]:
    rows = []
    seen: dict[str, int] = {}
    for n, row in enumerate(iter_jsonl(path, schema, nonempty), 1):
        if unique_id and "id" in row:
            key = str(row["id"])
            if key in seen:
                raise TbrError(f"duplicate id {key!r} (first seen in row {seen[key]})", path=path, line=n, field="id")
            seen[key] = n
        rows.append(row)
    return rows


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RowAppender:
    """Appends rows to `<final>.partial` and renames to `<final>` on `finish()`.

    On open it reloads what a killed earlier attempt wrote (dropping a torn last line), so a
    stage can skip the ids already done: resumption without duplicate or missing rows.
    """

    def __init__(self, final: Path | str, key: str = "id") -> None:
        self.final = Path(final)
        _check_writable(self.final.parent)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.key = key
        self.rows: list[dict[str, Any]] = []
        if self.partial.exists():
            data = self.partial.read_bytes()
            keep = data[: data.rfind(b"\n") + 1]  # a kill mid-write leaves a torn tail
            for line in keep.decode("utf-8", errors="replace").splitlines():
                try:
                    self.rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
            # rewrite so that the file holds exactly the rows we trust
            atomic_write_text(self.partial, "".join(_row_line(r) for r in self.rows))
        self.done = {str(r[key]) for r in self.rows}
        self._f = open(self.partial, "a", encoding="utf-8")

    def add(self, row: Mapping[str, Any]) -> None:
        self._f.write(_row_line(row))
        self._f.flush()
        self.rows.append(dict(row))
        self.done.add(str(row[self.key]))

    def finish(self, order: list[str] | None = None) -> Path:
        """Write the final file (rows ordered as `order` if given) and remove the partial one."""
        self._f.close()
        rows = self.rows
        if order is not None:
            by_key = {str(r[self.key]): r for r in rows}
            rows = [by_key[k] for k in order if k in by_key]
        write_jsonl(self.final, rows)
        self.partial.unlink(missing_ok=True)
        return self.final

    def close(self) -> None:
        self._f.close()
