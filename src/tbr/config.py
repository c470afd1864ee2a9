"""Typed experiment configuration: one dataclass per stage, YAML plus `--set key=value`.

Precedence: command line (`--set a.b=c`) beats the YAML file, which beats the defaults below.
An unknown key anywhere is an error that names its full dotted path.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from tbr.errors import TbrError


def _f(default: Any, help: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
       lt: float | None = None, choices: tuple[str, ...] | None = None, not_zero: bool = False) -> Any:
    """A config field with its help text and its allowed range, declared once, side by side.

    ge/gt/le/lt bound a number (each item of a list of numbers); choices lists the allowed
    strings (each item of a list of strings); not_zero refuses 0 (e.g. max_steps: -1 or > 0).
    `validate` checks every field against these before any work starts."""
    meta = {"help": help, "range": {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt))
                                    if v is not None}, "choices": choices, "not_zero": not_zero}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name: str = _f("smollm2-135m", "registry name (see `tbr models`), Hugging Face id, or local folder")
    dtype: str = _f("auto", "auto | bfloat16 | float32 | float16 (auto: bf16 where the hardware supports it)",
                    choices=("auto", "bfloat16", "float32", "float16", "bf16", "fp32", "fp16"))
    device: str = _f("auto", "auto | cpu | cuda", choices=("auto", "cpu", "cuda"))


@dataclass
class SourceConfig:
    source: str = _f("builtin", "builtin | a registered public set (see `tbr data list`) | path to a file")
    limit: int | None = _f(None, "keep at most this many rows (a seeded, stratified sample)", ge=1)
    columns: dict[str, str] = _f({}, "column map for files: tbr field -> column in the file")


@dataclass
class DataConfig:
    general: SourceConfig = field(default_factory=SourceConfig, metadata={"help": "general instructions"})
    safety: SourceConfig = field(default_factory=SourceConfig, metadata={"help": "harmful requests with refusals"})
    eval: list[str] = _f(["builtin"], "evaluation suites (see `tbr eval --list`)")
    eval_limit: int | None = _f(None, "per-suite cap on evaluation prompts (stratified by label and type); "
                                "applies to the suites of data.eval as the config names them: a suite given "
                                "with `tbr eval --suite` is evaluated whole unless `--limit` is set", ge=1)


@dataclass
class ReflectConfig:
    source: list[str] = _f(["internal"], "internal | external | builtin | shuffled | generic | none; a list is a grid axis")
    model: str | None = _f(None, "model for internal reflections (default: the model being trained)")
    max_new_tokens: int = _f(48, "length cap of one reflection, in tokens", ge=1)
    batch_size: int = _f(16, "prompts per generation batch", ge=1)
    api_base: str | None = _f(None, "external: OpenAI-compatible base URL (or env TBR_API_BASE)")
    api_model: str | None = _f(None, "external: model name at the endpoint")
    api_key_env: str = _f("OPENAI_API_KEY", "external: name of the environment variable holding the key")
    concurrency: int = _f(4, "external: requests in flight", ge=1)
    timeout: float = _f(60.0, "external: seconds per request", gt=0)
    max_retries: int = _f(5, "external: retries on 429, 5xx, timeouts, malformed replies", ge=0)


@dataclass
class BuildConfig:
    gamma: list[float] = _f([0.0, 1.0], "safety reflection ratio(s) γ in [0, 1]; a list is a grid axis; "
                            "[] trains nothing (evaluation only)", ge=0, le=1)
    template: str = _f("chat", "chat (the model's chat template) | alpaca (the paper's)", choices=("chat", "alpaca"))
    separator: str = _f(" ", "text between reflection and refusal")
    system_prompt: str | None = _f(None, "system prompt used when rendering with the chat template")


@dataclass
class LoraConfig:
    enabled: bool = _f(True, "LoRA adapters; false = full fine-tuning")
    r: int = _f(16, "rank", ge=1)
    alpha: int = _f(32, "scaling alpha", gt=0)
    dropout: float = _f(0.05, "dropout on the adapter input", ge=0, lt=1)
    target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                   "module names that get adapters")


@dataclass
class TrainConfig:
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA settings"})
    epochs: float = _f(1.0, "passes over the training set", gt=0)
    max_steps: int = _f(-1, "stop after this many optimizer steps (-1: use epochs)", ge=-1, not_zero=True)
    learning_rate: float = _f(3e-4, "peak learning rate", gt=0, lt=1)
    batch_size: int = _f(8, "sequences per device per step", ge=1)
    grad_accum: int = _f(1, "gradient accumulation steps", ge=1)
    max_length: int = _f(256, "token cutoff per example", ge=8)
    warmup_ratio: float = _f(0.03, "share of steps spent warming up", ge=0, lt=1)
    gradient_checkpointing: bool = _f(False, "trade compute for memory (worth it only for big models)")
    group_by_length: bool = _f(True, "batch similar lengths together to waste less padding")
    padding_free: bool = _f(False, "concatenate each batch into one row, no padding (SDPA, no cross-sample "
                                   "attention; same loss as padded); off: no faster on CPU once "
                                   "group_by_length has cut the padding")
    save_steps: int = _f(50, "checkpoint every N steps (resume after a kill)", ge=1)
    report_to: list[str] = _f([], "experiment trackers that get the Trainer's logs: tensorboard | wandb | trackio "
                              "| mlflow (default: none; logs go to train_log.jsonl and the progress bar)",
                              choices=("none", "tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "all"))
    merge: bool = _f(False, "also save the merged full model (for vLLM / lm-eval)")


@dataclass
class GenerateConfig:
    backend: str = _f("hf", "hf | vllm | openai", choices=("hf", "vllm", "openai"))
    modes: list[str] = _f(["plain"], "prompting modes: plain | direct | cot", choices=("plain", "direct", "cot"))
    max_new_tokens: int = _f(64, "response length cap", ge=1)
    batch_size: int = _f(64, "prompts per batch (hf backend; 64 was fastest on a 2-core CPU)", ge=1)
    api_base: str | None = _f(None, "openai backend: base URL")
    api_model: str | None = _f(None, "openai backend: model name")
    api_key_env: str = _f("OPENAI_API_KEY", "openai backend: env var with the key")
    untouched: bool = _f(True, "also evaluate the model before fine-tuning")


@dataclass
class JudgeConfig:
    judges: list[str] = _f(["tbr", "keywords", "xstest-prefix"], "judges to run (see `tbr judge --list`)")
    primary: str = _f("tbr", "judge whose labels give the headline compliance rates")
    model: str | None = _f(None, "llm/guard judges: local model (registry name, folder or hub id)")
    api_base: str | None = _f(None, "llm/guard judges: OpenAI-compatible base URL (instead of a local model)")
    api_model: str | None = _f(None, "llm/guard judges: model name at the endpoint")
    api_key_env: str = _f("OPENAI_API_KEY", "llm/guard judges: env var holding the API key")


@dataclass
class EvalConfig:
    bootstrap: int = _f(1000, "bootstrap resamples for paired differences", ge=0)
    general_tasks: list[str] = _f([], "lm-eval tasks for general ability (e.g. mmlu, gsm8k, arc_easy)")
    general_limit: int | None = _f(None, "lm-eval: examples per task (quick runs)", ge=1)


@dataclass
class AttributeConfig:
    enabled: bool = _f(False, "run the attribution stage")
    limit: int = _f(50, "prompts with a focus word to attribute", ge=1)
    neutral_words: list[str] = _f(["love", "see", "paint"], "replacements for the focus word (averaged)")
    target: str = _f("Sorry, but as an AI assistant, I couldn't answer your query.",
                     "refusal target text, or 'greedy' for the model's own first 16 response tokens")
    ig_steps: int = _f(64, "integrated-gradients steps (the completeness gap is reported; 128 for tighter; "
                       "0: no integrated gradients)", ge=0)
    ig_limit: int = _f(10, "integrated gradients on the first N prompts only (it costs ig_steps passes each)", ge=0)
    heatmaps: int = _f(2, "heatmaps drawn (first N prompts, all models side by side)", ge=0)


@dataclass
class ExperimentConfig:
    name: str = _f("demo", "run name: the run directory is <runs_dir>/<name>")
    runs_dir: str = _f("runs", "parent folder of run directories")
    seed: list[int] = _f([0], "random seed(s); a list is a grid axis", ge=0)
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)", ge=1)
    deterministic: bool = _f(False, "same metrics on every CPU family: fp32, one thread, deterministic torch "
                             "algorithms, and MKL/oneDNN pinned to one instruction-set path (slower)")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "base model"})
    models: list[Any] = _f([], "grid axis over base models (overrides model.name when non-empty); each entry "
                           "a name or folder, or {path: ..., label: ...} to name it in the report")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "data sources"})
    reflect: ReflectConfig = field(default_factory=ReflectConfig, metadata={"help": "reflection stage"})
    build: BuildConfig = field(default_factory=BuildConfig, metadata={"help": "mixing and rendering"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "fine-tuning"})
    generate: GenerateConfig = field(default_factory=GenerateConfig, metadata={"help": "generation"})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={"help": "judging"})
    evaluate: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "metrics"})
    attribute: AttributeConfig = field(default_factory=AttributeConfig, metadata={"help": "attribution"})

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


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


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise TbrError("config file not found", path=p)
        if p.is_dir():
            raise TbrError("expected a config file (YAML), got a folder", path=p)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise TbrError(f"not valid YAML ({getattr(e, 'problem', e)})", path=p,
                           line=(mark.line + 1) if mark else None) from None
        except UnicodeDecodeError:
            raise TbrError("not valid UTF-8", path=p) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise TbrError("expected a mapping at the top level", path=p)
        data = loaded
    for item in overrides or []:
        key, value = parse_override(item)
        _set_dotted(data, key, value)
    try:
        cfg = _build(ExperimentConfig, data)
    except TbrError as e:
        if path is not None:
            raise TbrError(f"{path}: {e}") from None
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
                a, b = bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt"))
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
    from tbr.reflect import SOURCES  # late: reflect imports config
    for s in cfg.reflect.source:
        if s not in SOURCES:
            raise TbrError(f"config key 'reflect.source': unknown source {s!r} (known: {', '.join(SOURCES)})")
    for m in cfg.generate.modes:
        if m not in ("plain", "direct", "cot"):
            raise TbrError(f"config key 'generate.modes': unknown mode {m!r} (known: plain, direct, cot)")
    from tbr.judges import JUDGES
    for j in [*cfg.judge.judges, cfg.judge.primary]:
        if j not in JUDGES:
            raise TbrError(f"config key 'judge.judges': unknown judge {j!r} (known: {', '.join(JUDGES)})")
    if cfg.judge.primary not in cfg.judge.judges:
        raise TbrError("config key 'judge.primary': must be one of judge.judges")
    from tbr.suites import SUITES, split_suite
    for s in cfg.data.eval:
        name, _ = split_suite(s)
        if name not in SUITES and not Path(name).suffix:
            raise TbrError(f"config key 'data.eval': unknown suite {s!r} (known: {', '.join(SUITES)}, "
                           "SUITE:/path/to/file, or a file path)")
    if cfg.train.batch_size < 1 or cfg.train.max_length < 8:
        raise TbrError("config key 'train': batch_size must be >= 1 and max_length >= 8")
    if not cfg.name or "/" in cfg.name:
        raise TbrError(f"config key 'name': expected a plain folder name, got {cfg.name!r}")
    from tbr.models import REGISTRY
    named = [("models", m) for m in paths] if cfg.models else [("model.name", cfg.model.name)]
    for key, m in [*named, ("reflect.model", cfg.reflect.model), ("judge.model", cfg.judge.model)]:
        # the same rules as tbr.models.resolve, checked before any stage runs
        if m is None or m in REGISTRY:
            continue
        local = Path(m).expanduser()
        if local.exists():
            check_model_folder(local, key)
            continue
        if m.count("/") == 1 and not m.startswith((".", "/", "~")) and not Path(m.split("/")[0]).is_dir():
            continue  # a Hugging Face id (owner/name); a path under an existing local folder is a typo
        if "/" in m or m.startswith((".", "~")):
            raise TbrError(f"config key '{key}': model folder not found", path=m)
        raise TbrError(f"config key '{key}': unknown model {m!r} (expected a registry name: {', '.join(REGISTRY)}; "
                       "an existing local folder; or a Hugging Face id owner/name)")


def check_model_folder(path: Path, key: str) -> None:
    """A local model is a folder holding a transformers config or a PEFT adapter."""
    if not path.is_dir():
        raise TbrError(f"config key '{key}': expected a model folder, got a file", path=path)
    if not any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
        raise TbrError(f"config key '{key}': not a model folder (no config.json or adapter_config.json in it)",
                       path=path)


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
