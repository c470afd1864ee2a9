"""`tbr general`: general ability (lm-eval accuracy) of one or more models."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tbr.errors import TbrError
from tbr.metrics import primary_metric, stderr_key
from tbr.stages.general import DEFAULT_TASKS, SMOKE_TASK, run_general


def _label_models(specs: list[str]) -> dict[str, str]:
    """--model values -> {label: name}. `LABEL=NAME` sets the label; otherwise it is the folder
    name, registry name or the last part of a hub id (made unique with -2, -3 ...)."""
    out: dict[str, str] = {}
    for spec in specs:
        label, sep, name = spec.partition("=")
        if not sep or not label or Path(spec).expanduser().exists():
            name = spec
            label = Path(spec.rstrip("/")).name or spec
        base, k = label, 2
        while label in out:
            label, k = f"{base}-{k}", k + 1
        out[label] = name
    return out


def register(sub: Any) -> None:
    p = sub.add_parser("general", help="general ability of models with lm-evaluation-harness (MMLU, GSM8K, ARC-E ...)",
                       description="Evaluate models with lm-evaluation-harness and write OUTPUT/general.json "
                                   "({label: {task: {metric: value}}}). A LoRA adapter folder is evaluated on the "
                                   f"base model recorded in it. {SMOKE_TASK} ships with tbr and runs offline; "
                                   "other tasks download their data from the Hugging Face hub.")
    p.add_argument("--model", action="append", required=True, metavar="[LABEL=]NAME_OR_PATH",
                   help="registry name, local folder (model or LoRA adapter) or hub id; repeatable")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                   help=f"comma-separated lm-eval tasks (default: {','.join(DEFAULT_TASKS)}; offline: {SMOKE_TASK})")
    p.add_argument("--limit", type=int, default=None, help="examples per task (default: all)")
    p.add_argument("--output", default="general", help="output folder (default: ./general)")
    p.add_argument("--num-fewshot", type=int, default=None, help="few-shot examples (default: each task's own)")
    p.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size (default: 8)")
    p.add_argument("--dtype", default="auto", help="auto | bfloat16 | float32 | float16")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--include-path", default=None, help="folder with your own lm-eval task YAML files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks:
        raise TbrError("--tasks names no task")
    if args.batch_size < 1:
        raise TbrError(f"--batch-size must be at least 1, got {args.batch_size}")
    models = _label_models(args.model)
    res = run_general(Path(args.output), models, tasks, args.limit, include_path=args.include_path,
                      batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                      num_fewshot=args.num_fewshot)
    for label, per_task in res.items():
        for task, tm in per_task.items():
            m = primary_metric(tm)
            if m is None:
                print(f"{label}\t{task}\tno metric")
                continue
            se = tm.get(stderr_key(m))
            print(f"{label}\t{task}\t{m} {tm[m]:.3f}" + (f" ± {se:.3f}" if se is not None else "")
                  + (f" (n={tm['n']})" if tm.get("n") is not None else ""))
    print(Path(args.output) / "general.json")
    return 0
