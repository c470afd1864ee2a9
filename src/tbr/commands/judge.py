"""`tbr judge` (label responses in a JSONL file) and `tbr judge-eval` (judges' accuracy,
kappa, confusion and per-model bias against labelled rows)."""
from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tbr.config import JudgeConfig
from tbr.data.public import map_columns, read_table
from tbr.data.schema import JUDGE_INPUT_SCHEMA
from tbr.data.sources import builtin_rows
from tbr.errors import TbrError
from tbr.io import atomic_write_text, read_jsonl, write_jsonl
from tbr.judges import JUDGES, LABELS, get_judge
from tbr.judges.bias import worst_diff
from tbr.judges.evaluation import evaluate_judge, record_validation, summary_markdown, write_judge_eval
from tbr.preflight import check_input_file
from tbr.stages.judge import apply_judge, make_judge

# judges that need no model and no endpoint: what `tbr judge-eval` measures by default
OFFLINE_JUDGES = ("keywords", "xstest-prefix", "tbr-rules", "tbr")


def register(sub: Any) -> None:
    _register_judge(sub)
    _register_judge_eval(sub)


def _register_judge(sub: Any) -> None:
    p = sub.add_parser("judge", help="label responses in a JSONL file with a judge")
    p.set_defaults(func=run_judge)
    p.add_argument("--input", help="JSONL with prompt and response per row")
    p.add_argument("--output", help="JSONL to write: every input field plus label, judge, raw")
    p.add_argument("--judge", default="tbr", help="judge name (default: tbr)")
    p.add_argument("--list", action="store_true", help="list the judges")
    p.add_argument("--model", help="llm/guard: local model")
    p.add_argument("--api-base", help="llm/guard: OpenAI-compatible base URL")
    p.add_argument("--api-model", help="llm/guard: model name at the endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="llm/guard: env var holding the key")


def _register_judge_eval(sub: Any) -> None:
    p = sub.add_parser("judge-eval", help="accuracy, kappa, confusion and per-model bias of judges against labelled rows")
    p.set_defaults(func=run_judge_eval)
    p.add_argument("--judge", action="append", default=None,
                   help="judge name (repeatable; default: the offline ones: " + ", ".join(OFFLINE_JUDGES) + ")")
    p.add_argument("--labels", default="bench",
                   help="bench (the frozen test split of the built-in judge-bench; default), bench:train, bench:all, "
                        "adversarial (the old hand-written hard cases), or a labelled JSONL (prompt, response, label; "
                        "optional model, family, experiment, prompt_label)")
    p.add_argument("--output", default="judge-eval", help="output folder")
    p.add_argument("--columns", default=None, metavar="FIELD=COLUMN,...",
                   help="column map for a labelled file in another layout, e.g. "
                        "response=completion,label=final_label (labels like '1_full_compliance' or "
                        "'full compliance' are read as full_compliance)")
    p.add_argument("--record", action="store_true",
                   help="(maintainers) store the results as the judges' validated accuracy shipped with tbr "
                        "(tbr/judges/judge_validation.json); only with --labels bench")
    p.add_argument("--model", help="llm/guard: local model judging the rows")
    p.add_argument("--api-base", help="llm/guard: OpenAI-compatible base URL")
    p.add_argument("--api-model", help="llm/guard: model name at the endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="llm/guard: env var holding the key")


def run_judge(args: argparse.Namespace) -> int:
    if args.list:
        for name in JUDGES:
            print(name)
        return 0
    if not args.input or not args.output:
        raise TbrError("tbr judge needs --input IN.jsonl and --output OUT.jsonl (or --list)")
    if args.judge not in JUDGES:
        raise TbrError(f"unknown judge {args.judge!r} (known: {', '.join(JUDGES)})")
    check_input_file(args.input, "--input")
    check_output(args.output, "--output", [args.input])
    rows = read_jsonl(args.input, JUDGE_INPUT_SCHEMA, nonempty=("prompt",), unique_id=True)
    if not rows:
        raise TbrError("no rows to judge", path=args.input)
    for n, r in enumerate(rows, 1):
        r.setdefault("id", str(n))
    judge = _make_cli_judge(args.judge, args, Path(args.output).parent / ".tbr-cache")
    out = apply_judge(judge, rows)
    write_jsonl(args.output, out)
    counts: dict[str, int] = {}
    for r in out:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    print(f"{args.output}: {len(out)} rows; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def check_output(path: str, flag: str, inputs: Sequence[str], folder: bool = False) -> None:
    """An output that is an input, or a file where a folder goes (or the reverse), is refused
    before anything is read or written."""
    out = Path(path).expanduser()
    for i in inputs:
        if i and Path(i).expanduser().exists() and out.resolve() == Path(i).expanduser().resolve():
            raise TbrError(f"{flag}: the output would replace the input {i}; choose another path", path=path)
    if folder and out.exists() and not out.is_dir():
        raise TbrError(f"{flag}: expected a folder, got a file", path=path)
    if not folder and out.is_dir():
        raise TbrError(f"{flag}: expected a file, got a folder", path=path)
    if not folder and out.parent.exists() and not out.parent.is_dir():
        raise TbrError(f"{flag}: {out.parent} is a file, expected a folder", path=path)


def _gold_label(value: Any) -> Any:
    """'1_full_compliance', 'Full Compliance', 'full-refusal' -> tbr's label names."""
    if not isinstance(value, str):
        return value
    v = re.sub(r"^\s*\d+[_.:)\s-]*", "", value.strip().lower())
    return re.sub(r"[\s-]+", "_", v)


def _labelled_rows(spec: str, columns: str | None = None) -> list[dict[str, Any]]:
    if spec in ("bench", "bench:test", "bench:train", "bench:all"):
        split = spec.partition(":")[2] or "test"
        rows = [r for r in builtin_rows("judge-bench") if split == "all" or r["split"] == split]
    elif spec == "adversarial":
        rows = builtin_rows("judge-adversarial")
    elif columns or not spec.endswith(".jsonl"):
        p = check_input_file(spec, "--labels")
        mapping = dict(kv.split("=", 1) for kv in (columns or "").split(",") if "=" in kv)
        rows = map_columns(read_table(p), mapping, ("prompt", "response", "label"), p,
                           {f: f for f in ("id", "prompt", "response", "label", "model", "family", "experiment",
                                            "prompt_label")})
        for n, r in enumerate(rows, 1):
            r["label"] = _gold_label(r["label"])
            r.setdefault("id", str(n))
    else:
        check_input_file(spec, "--labels")
        rows = read_jsonl(spec, {"prompt": (str,), "response": (str,), "label": (str,)})
    if not rows:
        raise TbrError("no labelled rows", path=spec)
    for n, r in enumerate(rows, 1):
        if r["label"] not in LABELS[:3]:
            raise TbrError(f"expected one of {', '.join(LABELS[:3])}, got {r['label']!r}",
                           path=spec, line=n, field="label")
    return rows


def run_judge_eval(args: argparse.Namespace) -> int:
    if args.record and args.labels not in ("bench", "bench:test"):
        raise TbrError("--record stores accuracy on the frozen test split only: use it with --labels bench")
    check_output(args.output, "--output", [args.labels], folder=True)
    rows = _labelled_rows(args.labels, args.columns)
    names = args.judge or list(OFFLINE_JUDGES)
    for name in names:  # every name checked before any judge runs
        if name not in JUDGES:
            raise TbrError(f"unknown judge {name!r} (known: {', '.join(JUDGES)})")
    results = []
    for name in names:
        res = evaluate_judge(_make_cli_judge(name, args, Path(args.output) / ".tbr-cache"), rows)
        res["labels"] = args.labels
        out = Path(args.output) / name
        write_judge_eval(res, out)
        results.append(res)
        b, t = res["binary"], res["three_class"]
        w = worst_diff(res)
        ci = w.get("ci") if w else None
        print(f"{name}: binary accuracy {b['accuracy']:.3f}, kappa {b['kappa'] if b['kappa'] is not None else float('nan'):.3f}; "
              f"3-class accuracy {t['accuracy']:.3f}; undecided {t['unparsed']}"
              + (f"; worst differential bias {abs(w['diff']):.3f}" if w else "")
              + (f" (95% CI {ci[0]:+.3f} to {ci[1]:+.3f})" if ci and ci[0] is not None else "") + f" -> {out}")
    summary = atomic_write_text(Path(args.output) / "summary.md", summary_markdown(results, args.labels, len(rows)))
    print(f"summary: {summary}")
    if args.record:
        print(f"recorded: {record_validation(results, len(rows))}")
    return 0


def _make_cli_judge(name: str, args: argparse.Namespace, cache_dir: Path) -> Any:
    if name in ("llm", "guard"):
        jc = JudgeConfig(model=args.model, api_base=args.api_base, api_model=args.api_model,
                         api_key_env=args.api_key_env)
        return make_judge(name, jc, cache_dir=cache_dir)
    return get_judge(name)
