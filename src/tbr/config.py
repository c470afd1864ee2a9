"""Typed experiment configuration: one dataclass per stage, YAML plus `--set key=value`.

Precedence: command line (`--set a.b=c`) beats the YAML file, which beats the defaults below.
An unknown key anywhere is an error that names its full dotted path.
"""
from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tbr.config_keys import (
    AttributeConfig,
    BuildConfig,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    GenerateConfig,
    JudgeConfig,
    LoraConfig,
    ModelConfig,
    ReflectConfig,
    SourceConfig,
    TrainConfig,
)
from tbr.errors import TbrError

__all__ = ["ModelConfig", "SourceConfig", "DataConfig", "ReflectConfig", "BuildConfig", "LoraConfig", "TrainConfig", "GenerateConfig", "JudgeConfig", "EvalConfig", "AttributeConfig", "ExperimentConfig", "config_from_data", "describe", "load_config", "read_yaml", "model_entries", "model_paths", "parse_override", "to_dict", "validate"]



def to_dict(cfg: Any) -> Any:
    return dataclasses.asdict(cfg)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check/convert a YAML value to the field's type; error names the dotted path."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise TbrError(f"config key '{path}': expected a mapping, got {value!r}")
        return _build(tp, value, path)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if origin is list:
        (item,) = args
        if not isinstance(value, list):
            value = [value]  # a scalar where a grid axis is expected means a one-value axis
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise TbrError(f"config key '{path}': expected a mapping, got {value!r}")
        return {str(k): str(v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TbrError(f"config key '{path}': expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TbrError(f"config key '{path}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TbrError(f"config key '{path}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise TbrError(f"config key '{path}': expected a string, got {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            full = f"{prefix}.{key}" if prefix else str(key)
            raise TbrError(f"unknown config key '{full}' (known here: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k, {}), dict):
            raise TbrError(f"config key '{dotted}': '{k}' is not a section")
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise TbrError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml(p: Path) -> Any:
    """A YAML file's content; bad YAML or bad UTF-8 is a one-line error with the file and line."""
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise TbrError(f"not valid YAML ({getattr(e, 'problem', e)})", path=p,
                       line=(mark.line + 1) if mark else None) from None
    except UnicodeDecodeError:
        raise TbrError("not valid UTF-8", path=p) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise TbrError("config file not found", path=p)
        if p.is_dir():
            raise TbrError("expected a config file (YAML), got a folder", path=p)
        loaded = read_yaml(p)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise TbrError("expected a mapping at the top level", path=p)
        data = loaded
    for item in overrides or []:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    return config_from_data(data, where=None if path is None else str(path))


def config_from_data(data: dict[str, Any], where: str | None = None, dotted: Mapping[str, Any] | None = None
                     ) -> ExperimentConfig:
    """An ExperimentConfig from a YAML mapping, `dotted` keys (`train.epochs: 2`) set on top;
    errors are prefixed with `where` (the file, an experiment of a study)."""
    data = copy.deepcopy(data)  # dotted keys write into nested sections: never into the caller's
    for key, value in (dotted or {}).items():
        _set_dotted(data, str(key), value)
    try:
        cfg = _build(ExperimentConfig, data)
    except TbrError as e:
        if where is not None:
            raise TbrError(f"{where}: {e}") from None
        raise
    validate(cfg)
    return cfg


def _check_range(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    items = value if isinstance(value, list) else [value]
    bounds = meta.get("range") or {}
    choices = meta.get("choices")
    for v in items:
        if v is None:
            continue
        if choices and isinstance(v, str) and v not in choices:
            raise TbrError(f"config key '{key}': expected one of {', '.join(choices)}, got {v!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        text = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}"}
        ok = {"ge": v >= bounds.get("ge", v), "gt": v > bounds["gt"] if "gt" in bounds else True,
              "le": v <= bounds.get("le", v), "lt": v < bounds["lt"] if "lt" in bounds else True}
        bad = [k for k in ("ge", "gt", "le", "lt") if k in bounds and not ok[k]]
        if bad or (meta.get("not_zero") and v == 0):
            lo = "[" if "ge" in bounds else "(" if "gt" in bounds else None
            hi = "]" if "le" in bounds else ")" if "lt" in bounds else None
            if lo and hi:  # a bounded interval reads best as one: within [0, 1]
                a = bounds["ge"] if "ge" in bounds else bounds["gt"]
                b = bounds["le"] if "le" in bounds else bounds["lt"]
                want = f"within {lo}{_num(a)}, {_num(b)}{hi}"
            else:
                want = " and ".join(text[k].format(_num(bounds[k])) for k in ("ge", "gt", "le", "lt") if k in bounds)
            if meta.get("not_zero"):
                want += ", and not 0"
            raise TbrError(f"config key '{key}': expected a value {want}, got {_num(v)}")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Every field's value against the range and choices declared beside its help text."""
    for f in dataclasses.fields(obj):
        key = f"{prefix}{f.name}"
        val = getattr(obj, f.name)
        if dataclasses.is_dataclass(val):
            check_ranges(val, key + ".")
        else:
            _check_range(key, val, f.metadata)


def model_entries(cfg: ExperimentConfig) -> list[tuple[str, str | None]]:
    """(path or name, explicit label or None) of each base model of the grid."""
    if not cfg.models:
        return [(cfg.model.name, None)]
    out: list[tuple[str, str | None]] = []
    for i, m in enumerate(cfg.models):
        if isinstance(m, str):
            out.append((m, None))
            continue
        if not isinstance(m, dict) or "path" not in m or set(m) - {"path", "label"}:
            raise TbrError(f"config key 'models[{i}]': expected a name, a folder, or {{path: ..., label: ...}}, "
                           f"got {m!r}")
        label = m.get("label")
        if not isinstance(m["path"], str) or not m["path"] or (label is not None and
                                                               (not isinstance(label, str) or not label.strip())):
            raise TbrError(f"config key 'models[{i}]': path and label must be non-empty strings, got {m!r}")
        out.append((m["path"], label))
    return out


def model_paths(cfg: ExperimentConfig) -> list[str]:
    return [p for p, _ in model_entries(cfg)]


def validate(cfg: ExperimentConfig) -> None:
    check_ranges(cfg)
    if cfg.deterministic:  # what --deterministic means, recorded in the run's config.yaml
        if cfg.model.dtype not in ("auto", "float32", "fp32"):
            raise TbrError(f"config key 'model.dtype': deterministic runs use float32, got {cfg.model.dtype!r}")
        if cfg.threads not in (None, 1):
            raise TbrError(f"config key 'threads': deterministic runs use one thread, got {cfg.threads}")
        cfg.model.dtype, cfg.threads = "float32", 1
    entries = model_entries(cfg)
    paths = [p for p, _ in entries]
    dup = sorted({p for p in paths if paths.count(p) > 1})
    if dup:
        raise TbrError(f"config key 'models': {dup[0]!r} is listed twice")
    if not cfg.build.gamma and not cfg.generate.untouched:
        raise TbrError("config: build.gamma is empty (no training) and generate.untouched is false: nothing to evaluate")
    if cfg.build.template not in ("chat", "alpaca"):
        raise TbrError(f"config key 'build.template': expected chat or alpaca, got {cfg.build.template!r}")
    for m in cfg.generate.modes:
        if m not in ("plain", "direct", "cot"):
            raise TbrError(f"config key 'generate.modes': unknown mode {m!r} (known: plain, direct, cot)")
    if cfg.judge.primary not in cfg.judge.judges:
        raise TbrError("config key 'judge.primary': must be one of judge.judges")
    if cfg.train.batch_size < 1 or cfg.train.max_length < 8:
        raise TbrError("config key 'train': batch_size must be >= 1 and max_length >= 8")
    if not cfg.name or "/" in cfg.name:
        raise TbrError(f"config key 'name': expected a plain folder name, got {cfg.name!r}")


def describe(cls: type = ExperimentConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every leaf: used by `tbr config --help-keys`."""
    out = []
    inst = cls()
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        val = getattr(inst, f.name)
        if dataclasses.is_dataclass(val):
            out.extend(describe(type(val), key + "."))
        else:
            out.append((key, repr(val), f.metadata.get("help", "")))
    return out
