"""General ability through lm-evaluation-harness (the paper's MMLU / GSM8K / ARC-Easy column).

`run_general` evaluates each model (registry name, local folder, hub id, or a LoRA adapter
folder, which lm-eval's "hf" model loads as `pretrained=<base>, peft=<adapter>`) on lm-eval
tasks and writes `out_dir/general.json`:

    {label: {task: {"acc": 0.61, "acc_stderr": 0.02, ..., "n": 40}}}

Metric keys are lm-eval's `metric,filter` names with the `,none` filter dropped (`acc`,
`acc_norm`, `exact_match,strict-match`, ...); every value is a plain number or null. Only the
tasks asked for appear (a group such as `mmlu` as its aggregate; a tag expands to its tasks);
lm-eval's full results for one model (subtasks, versions, n-shot, config, no samples) go to
`out_dir/lmeval/<label>.json`, which also lets a rerun with the same settings skip that model.

The package ships one small offline task, `tbr_arc_mini` (42 original multiple-choice science
and common-sense questions), for smoke runs without the hub. Its YAML is a template: at run
time it is written, with the absolute data path filled in, into a temporary include folder.
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import metadata, resources
from pathlib import Path
from typing import Any, cast

from tbr.errors import TbrError
from tbr.io import atomic_write_json
from tbr.labels import folder_name
from tbr.models import _adapter_base, resolve, resolve_device, resolve_dtype
from tbr.runs import fingerprint
from tbr.stages.context import Context
from tbr.stages.runner import run_stage

NAME = "general"
DEFAULT_TASKS = ["mmlu", "gsm8k", "arc_easy"]   # the paper's; they need the Hugging Face hub
SMOKE_TASK = "tbr_arc_mini"                     # shipped with tbr, runs offline
LOCAL_TASKS = {SMOKE_TASK: ("tbr_arc_mini.yaml.tmpl", "tbr_arc_mini.jsonl")}
PLACEHOLDER = "@DATA_FILE@"


def _lm_eval() -> tuple[Any, Any]:
    try:
        import lm_eval  # lm_eval: optional (eval extra), slow to import
        from lm_eval.tasks import TaskManager  # lm_eval: optional (eval extra), slow to import
    except ImportError:
        raise TbrError("general-ability evaluation needs lm-eval: pip install 'tbr[eval]'") from None
    return lm_eval, TaskManager


def _lmeval_version() -> str:
    try:
        return metadata.version("lm_eval")
    except Exception:  # noqa: BLE001 - a version string is only informative
        return "unknown"


def _package_file(name: str) -> bytes:
    try:
        return resources.files("tbr").joinpath("data", "lmeval", name).read_bytes()
    except FileNotFoundError:
        raise TbrError(f"tbr's packaged lm-eval task file data/lmeval/{name} is missing (broken install?)") from None


def write_local_tasks(dest: Path | str) -> Path:
    """Write tbr's offline lm-eval task(s) into `dest` (a folder for TaskManager's include_path):
    the data file, and the YAML with the data file's absolute path filled in."""
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for task, (tmpl, data) in LOCAL_TASKS.items():
        data_path = dest / data
        data_path.write_bytes(_package_file(data))
        yaml_text = _package_file(tmpl).decode("utf-8")
        if PLACEHOLDER not in yaml_text:
            raise TbrError(f"packaged task template {tmpl} lacks {PLACEHOLDER}")
        # a JSON string is a valid YAML scalar, whatever characters the path holds
        (dest / f"{task}.yaml").write_text(yaml_text.replace(PLACEHOLDER, json.dumps(str(data_path))),
                                           encoding="utf-8")
    return dest


def _local_tasks_digest() -> str:
    h = hashlib.sha256()
    for tmpl, data in LOCAL_TASKS.values():
        h.update(_package_file(tmpl))
        h.update(_package_file(data))
    return h.hexdigest()[:16]


def model_args(name: str, dtype: str = "auto", device: str = "auto") -> dict[str, Any]:
    """lm-eval "hf" model_args for a tbr model name. An adapter folder (adapter_config.json)
    becomes pretrained=<its base, resolved> + peft=<the folder>, with the folder's own
    tokenizer when it saved one."""
    dev = resolve_device(device)
    dt = str(resolve_dtype(dtype, dev)).removeprefix("torch.")
    path = resolve(name)
    base = _adapter_base(path)
    args: dict[str, Any] = {"dtype": dt}
    if base is None:
        args["pretrained"] = path
    else:
        args["pretrained"] = resolve(base)
        args["peft"] = path
        if (Path(path) / "tokenizer_config.json").exists():
            args["tokenizer"] = path
    return args


def _json_safe(x: Any) -> Any:
    """Numbers stay numbers (NaN/inf and lm-eval's "N/A" become null), containers recurse,
    anything else becomes its string form."""
    if x is None or isinstance(x, (bool, str)):
        return None if x == "N/A" else x
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if hasattr(x, "item") and callable(x.item):   # numpy / torch scalars
        try:
            return _json_safe(x.item())
        except (TypeError, ValueError):
            pass
    return str(x)


def _number(v: Any) -> float | int | None:
    v = _json_safe(v)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def top_level_tasks(results: Mapping[str, Any]) -> list[str]:
    """Names in lm-eval's results that are not a subtask of another group: what was asked for."""
    subs = {s for members in (results.get("group_subtasks") or {}).values() for s in members}
    return [t for t in results.get("results", {}) if t not in subs]


def _n_samples(results: Mapping[str, Any], task: str) -> int | None:
    ns = results.get("n-samples") or {}
    if task in ns:
        return cast("int | None", _number(ns[task].get("effective")))  # lm-eval writes sample counts as ints
    members = (results.get("group_subtasks") or {}).get(task)
    if not members:
        return None
    counts = [_n_samples(results, m) for m in members]
    return sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None


def summarize(results: Mapping[str, Any]) -> dict[str, dict[str, float | int | None]]:
    """{task: {metric: value, metric_stderr: value, n}} for the top-level tasks of one lm-eval
    result; `metric,none` keys lose their `,none`; non-numeric entries (alias, ...) are dropped."""
    out: dict[str, dict[str, Any]] = {}
    for task in top_level_tasks(results):
        row: dict[str, Any] = {}
        for key, value in results["results"][task].items():
            if key in ("alias", "name", "sample_len", "samples"):
                continue
            if isinstance(value, str) and value != "N/A":
                continue
            name = key[:-len(",none")] if key.endswith(",none") else key
            row[name] = _number(value)
        row["n"] = _n_samples(results, task)
        out[task] = row
    return out


def _folder_stamp(path: str | None) -> list[Any] | None:
    """Names, sizes and modification times of a local model folder's files: a retrained model
    at the same path must not reuse an earlier result."""
    if not path:
        return None
    p = Path(path)
    if not p.is_dir():
        return None
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(p.iterdir()) if f.is_file()]


def _task_manager(TaskManager: Any, tasks: Sequence[str], include: list[str]) -> Any:
    """Index only the include folders when they hold every task asked for (fast: indexing
    lm-eval's ~15k built-in configs takes seconds); otherwise include the built-ins too."""
    tm = TaskManager(include_path=include, include_defaults=False)
    if not all(t in tm.all_tasks for t in tasks):
        tm = TaskManager(include_path=include)
    missing = [t for t in tasks if t not in tm.all_tasks]
    if missing:
        raise TbrError(f"unknown lm-eval task(s): {', '.join(missing)} (built in: {SMOKE_TASK}; "
                       "see `lm-eval ls tasks`, or give include_path for your own YAML)")
    return tm


def run_general(out_dir: Path, models: dict[str, str], tasks: list[str], limit: int | None, *,
                include_path: str | None = None, batch_size: int = 8, dtype: str = "auto",
                device: str = "auto", num_fewshot: int | None = None) -> dict[str, Any]:
    """Evaluate each model (label -> name/path) on lm-eval `tasks`; write and return general.json.

    `limit` caps examples per task (None: all). A model whose `lmeval/<label>.json` was written
    with the same settings is not evaluated again."""
    lm_eval, TaskManager = _lm_eval()
    if not models:
        raise TbrError("general-ability evaluation needs at least one model")
    tasks = [t.strip() for t in tasks if t and t.strip()]
    if not tasks:
        raise TbrError("general-ability evaluation needs at least one lm-eval task")
    if limit is not None and limit < 1:
        raise TbrError(f"limit must be a positive number of examples per task, got {limit}")
    files = [folder_name(lab) for lab in models]
    if len(set(files)) != len(files):
        raise TbrError(f"model labels {', '.join(models)} collide as file names; choose distinct labels")
    out_dir = Path(out_dir)
    general: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tbr-lmeval-") as tmp:
        include = [str(write_local_tasks(tmp))]
        if include_path:
            if not Path(include_path).exists():
                raise TbrError("include_path does not exist", path=include_path)
            include.append(str(Path(include_path).resolve()))
        tm = None
        for label, name in models.items():
            margs = model_args(name, dtype=dtype, device=device)
            settings = {"model": name, "model_args": margs, "tasks": tasks, "limit": limit,
                        "num_fewshot": num_fewshot, "lm_eval": _lmeval_version(),
                        "local_tasks": _local_tasks_digest(), "include_path": include_path,
                        "stamps": [_folder_stamp(margs["pretrained"]), _folder_stamp(margs.get("peft")),
                                   _folder_stamp(include_path)]}
            cached = out_dir / "lmeval" / f"{folder_name(label)}.json"
            summary = _cached_summary(cached, settings)
            if summary is None:
                if tm is None:
                    tm = _task_manager(TaskManager, tasks, include)
                summary = _evaluate(lm_eval, label, margs, settings, cached, batch_size=batch_size,
                                    device=resolve_device(device), task_manager=tm)
            general[label] = summary
            atomic_write_json(out_dir / "general.json", _json_safe(general))
    general = _json_safe(general)
    atomic_write_json(out_dir / "general.json", general)
    return general


def _cached_summary(cached: Path, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The summary of an earlier evaluation with exactly these settings, if one was saved."""
    if not cached.exists():
        return None
    try:
        prev = json.loads(cached.read_text())
    except ValueError:
        return None
    return prev["summary"] if prev.get("settings") == _json_safe(settings) and "summary" in prev else None


def _evaluate(lm_eval: Any, label: str, margs: Mapping[str, Any], settings: Mapping[str, Any], cached: Path, *,
              batch_size: int, device: str, task_manager: Any) -> dict[str, Any]:
    """One model through lm-eval's simple_evaluate; its raw results saved beside the summary."""
    t0 = time.perf_counter()
    try:
        res = lm_eval.simple_evaluate(model="hf", model_args=dict(margs), tasks=list(settings["tasks"]),
                                      limit=settings["limit"], num_fewshot=settings["num_fewshot"],
                                      batch_size=batch_size, device=device, task_manager=task_manager,
                                      log_samples=False)
    except OSError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        hint = (f" (tasks such as {', '.join(DEFAULT_TASKS)} download their data from the Hugging Face "
                f"hub; {SMOKE_TASK} runs offline)") if "hub" in msg.lower() or "offline" in msg.lower() else ""
        raise TbrError(f"lm-eval could not load model or data for {label!r}: {msg}{hint}") from None
    seconds = time.perf_counter() - t0
    if res is None:
        raise TbrError(f"lm-eval returned no results for {label!r}")
    summary = summarize(res)
    keep = {k: res.get(k) for k in ("results", "groups", "group_subtasks", "versions", "n-shot",
                                    "higher_is_better", "n-samples", "config")}
    atomic_write_json(cached, _json_safe({"settings": settings, "seconds": round(seconds, 2),
                                          "summary": summary, "lm_eval": keep}))
    return summary


def run(ctx: Context) -> None:
    """General ability of every evaluated model, when evaluate.general_tasks names any."""
    ec = ctx.cfg.evaluate
    if not ec.general_tasks:
        return
    subjects = ctx.subjects()
    gfp = fingerprint("general", ec.general_tasks, ec.general_limit, [s.fp for s in subjects], ctx.dev)

    def do_general(out: Path) -> dict[str, Any]:
        res = run_general(out, {s.label: s.path for s in subjects}, list(ec.general_tasks), ec.general_limit,
                          dtype=ctx.dev["dtype"], device=ctx.dev["device"])
        return {"models": len(res), "tasks": len(ec.general_tasks)}
    run_stage(ctx.root / NAME, stage=NAME, label="general ability (lm-eval)", fp=gfp,
              config={"tasks": ec.general_tasks, "limit": ec.general_limit},
              inputs={"models": fingerprint(*[s.fp for s in subjects])}, fn=do_general, outputs=["general.json"])
