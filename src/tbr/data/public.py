"""Public sets and arbitrary files, mapped onto tbr's schema.

A *source* is one of:
- a registered name (see tbr.data.registry.PUBLIC), loaded from the Hugging Face hub;
- `NAME:PATH`, a registered set read from a local file in its published layout
  (e.g. `xstest:/data/xstest_prompts.csv`), or `NAME:ORG/REPO` for another hub copy;
- a path to a JSONL/CSV/JSON/Parquet file whose columns are mapped by `columns`
  (tbr field -> file column; defaults: prompt, response, category, id).

`load_public_training(kind, source, columns)` gives training rows; `load_public(source)` gives
the rows of any registered set with tbr field names (the suites build on it).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tbr.data.registry import DEFAULT_REFUSAL, PUBLIC, Hub, PublicSet
from tbr.errors import TbrError
from tbr.io import parse_jsonl_line

TABLE_SUFFIXES = (".jsonl", ".csv", ".json", ".parquet")
TEXT_SUFFIXES = (*TABLE_SUFFIXES, ".txt")
Lines = Sequence[int | None]


def _suffix(path: Path) -> str:
    """The format suffix, looking through a trailing .gz (`x.jsonl.gz` -> `.jsonl`)."""
    sfx = [s.lower() for s in path.suffixes]
    if sfx and sfx[-1] == ".gz" and len(sfx) > 1:
        return sfx[-2]
    return sfx[-1] if sfx else ""


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
        if path.suffix.lower() == ".gz":
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1
        raise TbrError(f"not valid UTF-8 (byte {e.start}); expected UTF-8 text", path=path, line=line) from None
    except (OSError, EOFError) as e:
        raise TbrError(f"cannot read file ({e})", path=path) from None


def _json_list(text: str, path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TbrError(f"not valid JSON ({e.msg})", path=path, line=e.lineno) from None
    if isinstance(data, dict):
        # common layouts: {"data": [...]} / {"train": [...]}
        for k in ("data", "train", "rows", "instances"):
            if isinstance(data.get(k), list):
                data = data[k]
                break
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise TbrError("expected a JSON list of objects", path=path)
    return data


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], list[int | None]]:
    """Rows of a JSONL, CSV, JSON (list of objects), Parquet or text file (one `prompt` per
    line), with the line each row starts on (None where a format has no lines)."""
    path = Path(path)
    if not path.is_file():
        raise TbrError("file not found", path=path)
    suffix = _suffix(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq  # pyarrow: only for parquet files
        try:
            rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises many types for a bad file
            raise TbrError(f"not a readable Parquet file ({str(e).splitlines()[0]})", path=path) from None
        return rows, [None] * len(rows)
    if suffix not in TEXT_SUFFIXES:
        raise TbrError(f"unsupported file type {suffix!r} (expected one of {', '.join(TEXT_SUFFIXES)})", path=path)
    text = _text(path)
    if suffix == ".json" or (suffix == ".jsonl" and text.lstrip().startswith("[")):
        # hh-rlhf's red_team_attempts.jsonl is in fact one JSON list
        rows = _json_list(text, path)
        return rows, [None] * len(rows)
    rows = []
    lines: list[int | None] = []
    if suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            rows.append(parse_jsonl_line(line, path, n))
            lines.append(n)
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        start = 2  # line 1 is the header
        try:
            for r in reader:
                if None in r:
                    raise TbrError(f"more fields than the {len(reader.fieldnames or [])} header columns",
                                   path=path, line=start)
                rows.append(dict(r))
                lines.append(start)
                start = reader.line_num + 1
        except csv.Error as e:
            raise TbrError(f"not valid CSV ({e})", path=path, line=reader.line_num) from None
    else:  # .txt: one prompt per line
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append({"prompt": line.strip()})
                lines.append(n)
    return rows, lines


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL, CSV, JSON (list of objects), Parquet or text file, as dicts."""
    return read_rows(path)[0]


def _where(path: object, lines: Lines | None, n: int) -> dict[str, Any]:
    """TbrError location of row n: its line where the format has lines, else 'row n'."""
    line = lines[n - 1] if lines and n - 1 < len(lines) else None
    return {"path": path, "line": line} if line is not None else {"path": f"{path} row {n}"}


def map_columns(rows: list[dict[str, Any]], mapping: dict[str, str], required: tuple[str, ...],
                path: str | Path, defaults: dict[str, str], lines: Lines | None = None) -> list[dict[str, Any]]:
    """Rename file columns to tbr fields; a missing required column is an error naming it."""
    cols = {**defaults, **mapping}
    if rows:
        present = set().union(*(r.keys() for r in rows[:50]))
        for field in required:
            if cols.get(field) not in present:
                raise TbrError(f"column {cols.get(field)!r} (for tbr field '{field}') not found; "
                               f"columns are: {', '.join(sorted(present))}", path=path)
    out = []
    for n, r in enumerate(rows, 1):
        row = {f: r.get(c) for f, c in cols.items() if c in r}
        for field in required:
            v = row.get(field)
            if not isinstance(v, str) or not v.strip():
                got = "missing" if cols[field] not in r else f"got {json.dumps(v, default=str)[:40]}"
                raise TbrError(f"expected a non-empty string, {got}", field=cols[field], **_where(path, lines, n))
        out.append(row)
    return out


# ---- sources ---------------------------------------------------------------------------------

def resolve(source: str) -> tuple[PublicSet | None, Path | None, Hub | None]:
    """(registered set or None, local file or None, hub copy or None) for a source string."""
    p = Path(source).expanduser()
    if p.is_file():
        return None, p, None
    name, sep, rest = source.partition(":")
    if name in PUBLIC:
        ps = PUBLIC[name]
        if not sep:
            if not ps.hub:
                raise TbrError(f"{name}: no hub copy is registered; give a local file as {name}:/path/to/file "
                               f"({', '.join(ps.formats)})")
            return ps, None, ps.hub[0]
        rp = Path(rest).expanduser()
        if rp.is_file():
            return ps, rp, None
        if rp.is_dir():
            raise TbrError(f"{name}: expected a file, got a folder", path=rest)
        if re.fullmatch(r"[\w.-]+/[\w.-]+", rest) and not Path(rest).suffix:
            hub = next((h for h in ps.hub if h.id == rest), Hub(rest))
            return ps, None, hub
        raise TbrError(f"{name}: file not found", path=rest)
    if p.suffix:
        raise TbrError("file not found", path=p)
    raise TbrError(f"unknown source {source!r} (expected a registered public set: {', '.join(PUBLIC)}; "
                   f"NAME:/path/to/file; or a file ending in {', '.join(TABLE_SUFFIXES)})")


def load_hub(hub: Hub) -> list[dict[str, Any]]:
    """All rows of a hub copy, via `datasets.load_dataset` (needs network or a warm cache)."""
    try:
        import datasets  # datasets: heavy, loaded on first use
    except ImportError:
        raise TbrError(f"loading {hub.id} from the hub needs the `datasets` package; "
                       "or download the file and pass NAME:/path/to/file") from None
    try:
        ds = datasets.load_dataset(hub.id, hub.config, split=hub.split, data_dir=hub.data_dir)
    except Exception as e:  # offline, unknown repo, bad config: all one message to the user
        msg = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise TbrError(f"could not load {hub.id}{f' ({hub.config})' if hub.config else ''} from the "
                       f"Hugging Face hub: {msg}; download it and pass NAME:/path/to/file instead") from None
    return [dict(r) for r in ds]


def _first_human_turn(transcript: str) -> str | None:
    m = re.search(r"Human:(.*?)(?:\n\n(?:Assistant|Human):|\Z)", transcript, flags=re.S)
    return m.group(1).strip() if m and m.group(1).strip() else None


def _category(tags: Any) -> str | None:
    if isinstance(tags, str):
        return tags.strip() or None
    if isinstance(tags, (list, tuple)):
        return next((t.strip() for t in tags if isinstance(t, str) and t.strip()), None)
    return None


def _map_set(ps: PublicSet, raw: list[dict[str, Any]], lines: Lines | None, where: str | Path,
             columns: dict[str, str], refusal: str) -> list[dict[str, Any]]:
    """Rows of a registered set with tbr field names, per its layout."""
    rows = map_columns(raw, columns, ps.required, where, dict(ps.columns), lines)
    if ps.layout == "instruction":
        for r in rows:
            extra = r.pop("input", None)
            if isinstance(extra, str) and extra.strip():
                r["prompt"] = f"{r['prompt'].strip()}\n\n{extra.strip()}"
    elif ps.layout == "transcript":
        for n, r in enumerate(rows, 1):
            first = _first_human_turn(r["prompt"])
            if first is None:
                raise TbrError("expected a transcript with a non-empty first turn '\\n\\nHuman: ...'",
                               field=columns.get("prompt", ps.columns["prompt"]), **_where(where, lines, n))
            r["prompt"], r["response"], r["category"] = first, refusal, _category(r.get("category"))
    elif ps.kind == "eval":
        label_col = columns.get("label", ps.columns.get("label", "label"))
        for n, r in enumerate(rows, 1):
            if ps.label is not None:
                r["label"] = ps.label
            label = str(r.get("label") or "").strip().lower()
            if label not in ("safe", "unsafe"):
                raise TbrError(f"expected safe or unsafe, got {r.get('label')!r}", field=label_col,
                               **_where(where, lines, n))
            r["label"] = label
            r["type"] = str(r.get("type") or "").strip() or ps.type or "unspecified"
            focus = r.get("focus")
            r["focus"] = focus.strip() if isinstance(focus, str) and focus.strip() else None
    return rows


def load_public(source: str, columns: dict[str, str] | None = None, *,
                refusal: str | None = None) -> tuple[PublicSet, list[dict[str, Any]]]:
    """A registered set (by name, NAME:PATH or NAME:ORG/REPO) as rows with tbr field names."""
    ps, path, hub = resolve(source)
    if ps is None:
        raise TbrError(f"{source}: a plain file; give it as NAME:{source} with NAME one of {', '.join(PUBLIC)}")
    if path is not None:
        if _suffix(path) not in ps.formats and not any(str(path).lower().endswith(f) for f in ps.formats):
            raise TbrError(f"{ps.name}: unsupported file type {_suffix(path)!r} "
                           f"(expected one of {', '.join(ps.formats)})", path=path)
        raw, lines = read_rows(path)
        if ps.layout != "lines" and _suffix(path) == ".txt":
            raise TbrError(f"{ps.name}: a text file is not a table", path=path)
        where: str | Path = path
    else:
        assert hub is not None
        raw, lines, where = load_hub(hub), None, f"hub {hub.id}"
    if not raw:
        raise TbrError(f"{ps.name}: no rows", path=where)
    return ps, _map_set(ps, raw, lines, where, columns or {}, refusal or DEFAULT_REFUSAL)


def _training_rows(rows: list[dict[str, Any]], kind: str, stem: str, source: str, where: object) -> list[dict[str, Any]]:
    out = []
    for n, r in enumerate(rows, 1):
        rid = r.get("id")
        out.append({"id": str(rid) if rid not in (None, "") else f"{stem}-{n:05d}", "kind": kind,
                    "prompt": r["prompt"], "response": r["response"], "reflection": None,
                    "category": _category(r.get("category")), "source": source,
                    **({"builtin_reflection": r["reflection"]} if r.get("reflection") else {})})
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise TbrError(f"duplicate id {dup!r}", path=where, field="id")
    return out


def load_public_training(kind: str, source: str, columns: dict[str, str], *,
                         refusal: str | None = None) -> list[dict[str, Any]]:
    """Training rows of `kind` (general | safety) from a registered set or a file.

    `refusal` is the response given to prompts of sets without refusals (hh-redteam)."""
    ps, path, _ = resolve(source)
    if ps is not None:
        if ps.kind != kind:
            fits = [n for n, s in PUBLIC.items() if s.kind == kind]
            raise TbrError(f"data.{kind}.source: {ps.name} is {'an' if ps.kind[0] in 'aeiou' else 'a'} {ps.kind} set (for data.{kind} use "
                           f"{', '.join(fits) or 'a file'})")
        _, rows = load_public(source, columns, refusal=refusal)
        return _training_rows(rows, kind, ps.name, source, path or source)
    assert path is not None
    if _suffix(path) not in TABLE_SUFFIXES:
        raise TbrError(f"data.{kind}.source: unsupported file type (expected a registered public set, "
                       f"or a file ending in {', '.join(TABLE_SUFFIXES)})", path=path)
    raw, lines = read_rows(path)
    if raw and not columns and "prompt" not in raw[0] and {"instruction", "output"} <= set(raw[0]):
        # an instruction/input/output file (Alpaca layout) needs no column map
        rows = _map_set(PUBLIC["alpaca"], raw, lines, path, {}, refusal or DEFAULT_REFUSAL)
    else:
        rows = map_columns(raw, columns, ("prompt", "response"), path,
                           {"prompt": "prompt", "response": "response", "category": "category", "id": "id",
                            "reflection": "reflection"}, lines)
    return _training_rows(rows, kind, path.stem, str(path), path)
