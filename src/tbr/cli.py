"""Command line: `tbr run | reflect | build | train | generate | judge | attribute | eval | report |
judge-eval | models | data | compare | config`. This module only parses and dispatches.

A user error prints one line (`tbr: error: ...`) and exits with status 2; `--debug` shows the
traceback instead."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from tbr.errors import TbrError

DEFAULT_CONFIG = "configs/demo.yaml"
# judges that need no model and no endpoint: what `tbr judge-eval` measures by default
OFFLINE_JUDGES = ("keywords", "xstest-prefix", "tbr-rules", "tbr")
# Commands that live in their own modules: each has `register(subparsers)`, which adds a
# parser with `set_defaults(func=run)` where `run(args) -> int`.
COMMAND_MODULES = ("tbr.commands.data", "tbr.commands.compare", "tbr.commands.general", "tbr.commands.bench")
STAGE_COMMANDS = ("reflect", "build", "train", "generate", "attribute")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None,
                   help=f"experiment YAML (default: {DEFAULT_CONFIG} if present, else built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true",
                   help="the libraries' own logs too: raw Trainer log dicts, warnings, load reports")
    p.add_argument("--deterministic", action="store_true",
                   help="same metrics on every CPU family: fp32, one thread, deterministic kernels (slower); "
                        "same as --set deterministic=true")


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tbr", description="Think-Before-Refusal: fine-tune and measure false refusal.")
    ap.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="run the whole experiment (every stage; finished ones are skipped)")
    _add_config_args(p)
    for st in STAGE_COMMANDS:
        p = sub.add_parser(st, help=f"run the pipeline up to the {st} stage (earlier finished stages are skipped)")
        _add_config_args(p)
        if st == "reflect":
            p.add_argument("--source", action="append", default=None,
                           help="reflection source(s): internal, external, builtin, shuffled, generic, none")
    p = sub.add_parser("eval", help="evaluate models on suites (up to evaluate + report)")
    _add_config_args(p)
    p.add_argument("--suite", action="append", default=None, help="suite name, SUITE:/path, or file (repeatable)")
    p.add_argument("--model", action="append", default=None, help="model(s) to evaluate (default: model.name)")
    p.add_argument("--label", action="append", default=None,
                   help="name of each --model in the report, in the same order (default: the run and cell of a "
                        "folder tbr trained, else the folder's name)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate at most N prompts of each --suite (a stratified sample; default: the whole suite)")
    p.add_argument("--mode", action="append", default=None, help="prompting mode(s): plain, direct, cot")
    p.add_argument("--train", action="store_true", help="also train the config's cells (default: evaluate only)")
    p.add_argument("--list", action="store_true", help="list the suites")

    p = sub.add_parser("judge", help="label responses in a JSONL file with a judge")
    p.add_argument("--input", help="JSONL with prompt and response per row")
    p.add_argument("--output", help="JSONL to write: every input field plus label, judge, raw")
    p.add_argument("--judge", default="tbr", help="judge name (default: tbr)")
    p.add_argument("--list", action="store_true", help="list the judges")
    p.add_argument("--model", help="llm/guard: local model")
    p.add_argument("--api-base", help="llm/guard: OpenAI-compatible base URL")
    p.add_argument("--api-model", help="llm/guard: model name at the endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="llm/guard: env var holding the key")

    p = sub.add_parser("judge-eval", help="accuracy, kappa, confusion and per-model bias of judges against labelled rows")
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

    p = sub.add_parser("report", help="(re)write report.md, metrics.json and plots of a run directory")
    p.add_argument("run_dir")

    sub.add_parser("models", help="list the model registry")

    p = sub.add_parser("config", help="print the resolved config, or every key with its help")
    _add_config_args(p)
    p.add_argument("--keys", action="store_true", help="list every config key with default and help")
    import importlib
    for mod in COMMAND_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        m.register(sub)
    return ap


def _load_cfg(args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    from tbr.config import load_config
    path = args.config
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return load_config(path, list(args.overrides) + list(extra))


def _cmd_judge(args: argparse.Namespace) -> int:
    from tbr.data.schema import JUDGE_INPUT_SCHEMA
    from tbr.evaluate import apply_judge
    from tbr.io import read_jsonl, write_jsonl
    from tbr.judges import JUDGES
    if args.list:
        for name in JUDGES:
            print(name)
        return 0
    if not args.input or not args.output:
        raise TbrError("tbr judge needs --input IN.jsonl and --output OUT.jsonl (or --list)")
    if args.judge not in JUDGES:
        raise TbrError(f"unknown judge {args.judge!r} (known: {', '.join(JUDGES)})")
    from tbr.preflight import check_input_file
    check_input_file(args.input, "--input")
    _check_output(args.output, "--output", [args.input])
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


def _check_output(path: str, flag: str, inputs: Sequence[str], folder: bool = False) -> None:
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
    import re
    if not isinstance(value, str):
        return value
    v = re.sub(r"^\s*\d+[_.:)\s-]*", "", value.strip().lower())
    return re.sub(r"[\s-]+", "_", v)


def _labelled_rows(spec: str, columns: str | None = None) -> list[dict[str, Any]]:
    from tbr.data.sources import builtin_rows
    from tbr.io import read_jsonl
    from tbr.judges import LABELS
    if spec in ("bench", "bench:test", "bench:train", "bench:all"):
        split = spec.partition(":")[2] or "test"
        rows = [r for r in builtin_rows("judge-bench") if split == "all" or r["split"] == split]
    elif spec == "adversarial":
        rows = builtin_rows("judge-adversarial")
    elif columns or not spec.endswith(".jsonl"):
        from tbr.data.public import map_columns, read_table
        from tbr.preflight import check_input_file
        p = check_input_file(spec, "--labels")
        mapping = dict(kv.split("=", 1) for kv in (columns or "").split(",") if "=" in kv)
        rows = map_columns(read_table(p), mapping, ("prompt", "response", "label"), p,
                           {f: f for f in ("id", "prompt", "response", "label", "model", "family", "experiment",
                                            "prompt_label")})
        for n, r in enumerate(rows, 1):
            r["label"] = _gold_label(r["label"])
            r.setdefault("id", str(n))
    else:
        from tbr.preflight import check_input_file
        check_input_file(spec, "--labels")
        rows = read_jsonl(spec, {"prompt": (str,), "response": (str,), "label": (str,)})
    if not rows:
        raise TbrError("no labelled rows", path=spec)
    for n, r in enumerate(rows, 1):
        if r["label"] not in LABELS[:3]:
            raise TbrError(f"expected one of {', '.join(LABELS[:3])}, got {r['label']!r}",
                           path=spec, line=n, field="label")
    return rows


def _cmd_judge_eval(args: argparse.Namespace) -> int:
    from tbr.judge_eval import evaluate_judge, summary_markdown, write_judge_eval
    from tbr.judges import JUDGES
    if args.record and args.labels not in ("bench", "bench:test"):
        raise TbrError("--record stores accuracy on the frozen test split only: use it with --labels bench")
    _check_output(args.output, "--output", [args.labels], folder=True)
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
        worst = max((abs(d["diff"]) for d in res.get("differential_bias", []) if d["diff"] is not None), default=None)
        print(f"{name}: binary accuracy {b['accuracy']:.3f}, kappa {b['kappa'] if b['kappa'] is not None else float('nan'):.3f}; "
              f"3-class accuracy {t['accuracy']:.3f}; undecided {t['unparsed']}"
              + (f"; worst differential bias {worst:.3f}" if worst is not None else "") + f" -> {out}")
    from tbr.io import atomic_write_text
    summary = atomic_write_text(Path(args.output) / "summary.md", summary_markdown(results, args.labels, len(rows)))
    print(f"summary: {summary}")
    if args.record:
        from tbr.judge_eval import record_validation
        print(f"recorded: {record_validation(results, len(rows))}")
    return 0


def _make_cli_judge(name: str, args: argparse.Namespace, cache_dir: Path) -> Any:
    from tbr.judges import get_judge
    if name in ("llm", "guard"):
        from tbr.config import JudgeConfig
        from tbr.evaluate import make_judge
        jc = JudgeConfig(model=args.model, api_base=args.api_base, api_model=args.api_model,
                         api_key_env=args.api_key_env)
        return make_judge(name, jc, cache_dir=cache_dir)
    return get_judge(name)


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if getattr(args, "deterministic", False):
        from tbr.determinism import pin_kernels
        pin_kernels()  # environment first: MKL and oneDNN read it when torch loads
    from tbr.quiet import quiet_libraries
    quiet_libraries(verbose=getattr(args, "verbose", False))
    try:
        return _dispatch(args)
    except TbrError as e:
        if args.debug:
            raise
        print(f"tbr: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path a check missed (a folder for a file, no permission): still one line
        if args.debug or e.filename is None:
            raise
        print(f"tbr: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tbr: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `tbr data list | head`: the reader left; exit quietly like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _common_overrides(args: argparse.Namespace) -> list[str]:
    return ["deterministic=true"] if getattr(args, "deterministic", False) else []


def _dispatch(args: argparse.Namespace) -> int:
    from tbr import pipeline
    if getattr(args, "func", None) is not None:
        return int(args.func(args) or 0)
    cmd = args.cmd
    if cmd == "run" or cmd in STAGE_COMMANDS:
        extra = _common_overrides(args)
        if cmd == "reflect" and args.source:
            extra.append(f"reflect.source={args.source}")
        cfg = _load_cfg(args, extra)
        from tbr.train import run_launched, world
        if world()[1] > 1:  # under accelerate launch / torchrun: rank 0 runs the pipeline, every rank trains
            run_launched(cfg, progress=not args.no_progress, until="report" if cmd == "run" else cmd)
        else:
            pipeline.run(cfg, progress=not args.no_progress, until="report" if cmd == "run" else cmd)
        if cmd != "run" and world()[0] == 0:
            print(cfg.run_dir / cmd)
        return 0
    if cmd == "eval":
        from tbr.suites import SUITES
        if args.list:
            for s in SUITES.values():
                print(f"{s.name}\t{s.description}")
            return 0
        extra = _common_overrides(args)
        if args.suite:
            extra.append(f"data.eval={args.suite}")
            # a suite named on the command line is evaluated whole: the config's eval_limit was
            # chosen for the config's own suites; --limit (or an explicit --set) samples it
            if args.limit is not None:
                extra.append(f"data.eval_limit={args.limit}")
            elif not any(o.strip().startswith("data.eval_limit=") for o in args.overrides):
                extra.append("data.eval_limit=null")
        elif args.limit is not None:
            extra.append(f"data.eval_limit={args.limit}")
        if args.label and not args.model:
            raise TbrError("--label names each --model: give --model too")
        if args.model:
            if args.label and len(args.label) != len(args.model):
                raise TbrError(f"--label: {len(args.label)} label(s) for {len(args.model)} --model(s); "
                               "give one label per model, in the same order")
            import json
            entries = [{"path": m, "label": lab} for m, lab in zip(args.model, args.label)] if args.label \
                else list(args.model)
            extra.append("models=" + json.dumps(entries))
        if args.mode:
            extra.append(f"generate.modes={args.mode}")
        if not args.train:
            extra += ["build.gamma=[]", "generate.untouched=true"]
        cfg = _load_cfg(args, extra)
        pipeline.run(cfg, progress=not args.no_progress)
        return 0
    if cmd == "judge":
        return _cmd_judge(args)
    if cmd == "judge-eval":
        return _cmd_judge_eval(args)
    if cmd == "report":
        from tbr.report import write_report
        print(write_report(Path(args.run_dir)))
        return 0
    if cmd == "models":
        from tbr.models import describe_models
        for r in describe_models():
            print(f"{r['name']}\t{r['description']}\tlicence {r['licence']}\tcached: {r['cached']}")
        print("(any Hugging Face model id or local folder also works)")
        return 0
    if cmd == "config":
        if args.keys:
            from tbr.config import describe
            for k, d, h in describe():
                print(f"{k} = {d}\n    {h}")
            return 0
        import yaml

        from tbr.config import to_dict
        print(yaml.safe_dump(to_dict(_load_cfg(args)), sort_keys=False, allow_unicode=True))
        return 0
    raise TbrError(f"unknown command {cmd!r}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
