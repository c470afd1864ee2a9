"""Command line: `tbr run | reflect | build | train | generate | judge | attribute | eval | report |
judge-eval | models | data | compare | study | review | config`. This module only parses and dispatches.

A user error prints one line (`tbr: error: ...`) and exits with status 2; `--debug` shows the
traceback instead."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from tbr import pipeline
from tbr.attacks import describe as describe_attacks
from tbr.config import ExperimentConfig, describe, load_config, to_dict
from tbr.determinism import pin_kernels
from tbr.distributed import world
from tbr.errors import TbrError
from tbr.models import describe_models
from tbr.preflight import check_names
from tbr.quiet import quiet_libraries
from tbr.report.markdown import write_report
from tbr.suites import SUITES

DEFAULT_CONFIG = "configs/demo.yaml"
# Commands that live in their own modules: each has `register(subparsers)`, which adds a
# parser with `set_defaults(func=run)` where `run(args) -> int`.
COMMAND_MODULES = ("tbr.commands.judge", "tbr.commands.data", "tbr.commands.compare", "tbr.commands.general",
                   "tbr.commands.review", "tbr.commands.study")
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
    p.add_argument("--attack", action="append", default=None, metavar="NAME[,NAME...]",
                   help="also evaluate every prompt wrapped in these attacks (all = every one; repeatable); "
                        "the unwrapped prompts stay in as attack none")
    p.add_argument("--list-attacks", action="store_true", help="describe the attacks")

    p = sub.add_parser("report", help="(re)write report.md, metrics.json and plots of a run directory")
    p.add_argument("run_dir")

    sub.add_parser("models", help="list the model registry")

    p = sub.add_parser("config", help="print the resolved config, or every key with its help")
    _add_config_args(p)
    p.add_argument("--keys", action="store_true", help="list every config key with default and help")
    for mod in COMMAND_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        m.register(sub)
    return ap


def _load_cfg(args: argparse.Namespace, extra: Sequence[str] = ()) -> ExperimentConfig:
    path = args.config
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    cfg = load_config(path, list(args.overrides) + list(extra))
    check_names(cfg)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if getattr(args, "deterministic", False):
        pin_kernels()  # environment first: MKL and oneDNN read it when torch loads
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
    if getattr(args, "func", None) is not None:  # a command from COMMAND_MODULES
        return int(args.func(args) or 0)
    if args.cmd == "run" or args.cmd in STAGE_COMMANDS:
        return _cmd_stages(args)
    handlers = {"eval": _cmd_eval, "report": _cmd_report, "models": _cmd_models, "config": _cmd_config}
    if args.cmd not in handlers:
        raise TbrError(f"unknown command {args.cmd!r}")
    return handlers[args.cmd](args)


def _cmd_stages(args: argparse.Namespace) -> int:
    cmd = args.cmd
    extra = _common_overrides(args)
    if cmd == "reflect" and args.source:
        extra.append(f"reflect.source={args.source}")
    cfg = _load_cfg(args, extra)
    until = "report" if cmd == "run" else cmd
    if world()[1] > 1:  # under accelerate launch / torchrun: rank 0 runs the pipeline, every rank trains
        pipeline.run_launched(cfg, progress=not args.no_progress, until=until)
    else:
        pipeline.run(cfg, progress=not args.no_progress, until=until)
    if cmd != "run" and world()[0] == 0:
        print(cfg.run_dir / cmd)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.list:
        for s in SUITES.values():
            print(f"{s.name}\t{s.description}")
        return 0
    if args.list_attacks:
        for name, desc in describe_attacks():
            print(f"{name}\t{desc}")
        return 0
    extra = _common_overrides(args)
    if args.attack:
        names = [n.strip() for a in args.attack for n in a.split(",") if n.strip()]
        extra.append("evaluate.attacks=" + json.dumps(names))
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
        entries = [{"path": m, "label": lab} for m, lab in zip(args.model, args.label)] if args.label \
            else list(args.model)
        extra.append("models=" + json.dumps(entries))
    if args.mode:
        extra.append(f"generate.modes={args.mode}")
    if not args.train:
        extra += ["build.gamma=[]", "generate.untouched=true"]
    pipeline.run(_load_cfg(args, extra), progress=not args.no_progress)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    print(write_report(Path(args.run_dir)))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    for r in describe_models():
        print(f"{r['name']}\t{r['description']}\tlicence {r['licence']}\tcached: {r['cached']}")
    print("(any Hugging Face model id or local folder also works)")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    if args.keys:
        for k, d, h in describe():
            print(f"{k} = {d}\n    {h}")
        return 0
    print(yaml.safe_dump(to_dict(_load_cfg(args)), sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
