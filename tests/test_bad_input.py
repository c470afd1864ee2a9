"""Bad input, command by command: exit status 2, one line `tbr: error: ...` naming the file, line and
field where there is one and what was expected, no traceback (unless --debug), nothing written.

"Nothing written" means, precisely:
- judge / judge-eval / report / compare: the output file or folder does not exist afterwards (or, for
  report, no report.md / metrics.json / timings.json appeared); no temporary file beside it either;
- run and the stage commands: the run directory either does not exist, or holds only `config.yaml`
  and `.lock` plus *finished* stage folders (each with a manifest.json); no stage folder without a
  manifest, no `*.partial`, no temporary `.*.tmp` file anywhere in it.

Most cases run in-process through tbr.cli.main (fast); a few run the real CLI in a subprocess
(`python -m tbr`) to check the exit status, the stderr bytes and --debug.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import tiny_overrides
from tbr.cli import main

pytestmark = pytest.mark.timeout(120)


# ---- helpers ---------------------------------------------------------------------------------

def sets(items: list[str]) -> list[str]:
    out: list[str] = []
    for it in items:
        out += ["--set", it]
    return out


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def jsonl(rows: list[object]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


GEN = [{"id": f"g{i}", "prompt": f"write {i}", "response": f"it is {i}"} for i in range(4)]
SAF = [{"id": f"s{i}", "prompt": f"build a bomb {i}", "response": "Sorry, I cannot help.",
        "reflection": "This asks for weapon information.", "category": "weapons"} for i in range(4)]
JUDGE_ROWS = [{"id": str(i), "prompt": f"how do I kill a process {i}", "response": "Use kill -9."} for i in range(4)]


def no_half_run(run_dir: Path) -> None:
    """The run-directory half of 'nothing written' (see the module docstring)."""
    if not run_dir.exists():
        return
    # a run folder may stay only when some stage in it finished (its work is kept for a rerun)
    assert any(run_dir.rglob("manifest.json")), f"run folder left with no finished stage: {sorted(os.listdir(run_dir))}"
    for p in run_dir.rglob("*"):
        assert not p.name.endswith((".partial", ".tmp")), f"leftover {p}"
        if p.is_dir() and (p / ".fingerprint").exists():
            assert (p / "manifest.json").exists(), f"half-made stage folder {p}: {sorted(os.listdir(p))}"
    top = {p.name for p in run_dir.iterdir() if p.is_file()}
    assert top <= {"config.yaml", ".lock"}, top
    for d in (p for p in run_dir.iterdir() if p.is_dir()):
        assert any(d.rglob("manifest.json")), f"stage folder {d} without any finished stage"


def nothing_at(path: Path) -> Callable[[], None]:
    def check() -> None:
        assert not path.exists(), f"{path} was written"
        if path.parent.exists():
            stray = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
            assert not stray, stray
    return check


@dataclass
class Ctx:
    tmp: Path
    model: Path
    data: dict[str, Path]
    runs: Path
    checks: list[Callable[[], None]] = field(default_factory=list)

    def run_args(self, cmd: str = "run", extra: list[str] = (), **replace: str) -> list[str]:
        """`tbr <cmd>` on the tiny setup, with some overrides replaced (key=value)."""
        items = tiny_overrides(self.model, self.data, self.runs, "bad")
        keys = {it.split("=", 1)[0]: n for n, it in enumerate(items)}
        for k, v in replace.items():
            k = k.replace("__", ".")
            if k in keys:
                items[keys[k]] = f"{k}={v}"
            else:
                items.append(f"{k}={v}")
        self.checks.append(lambda: no_half_run(self.runs / "bad"))
        return [cmd, *sets(items), *extra, "--no-progress"]

    def judge(self, input_text: str | bytes | None, name: str = "in.jsonl", extra: list[str] = ()) -> list[str]:
        inp = self.tmp / name
        if input_text is not None:
            write(inp, input_text)
        out = self.tmp / "out" / "judged.jsonl"
        self.checks.append(nothing_at(out))
        return ["judge", "--input", str(inp), "--output", str(out), *extra]


# ---- the catalogue: id -> (argv maker, fragments the one error line must contain) ------------

Case = tuple[Callable[[Ctx], list[str]], list[str]]


def _yaml(c: Ctx, text: str | bytes) -> str:
    return str(write(c.tmp / "cfg.yaml", text))


CASES: dict[str, Case] = {
    # config and command line (nothing is written: the run directory is never made)
    "yaml-syntax-error": (lambda c: ["run", _yaml(c, "name: x\ntrain:\n  epochs: [1\n")],
                          ["cfg.yaml:", "not valid YAML"]),
    "yaml-not-a-mapping": (lambda c: ["run", _yaml(c, "- a\n- b\n")], ["cfg.yaml", "expected a mapping"]),
    "yaml-not-utf8": (lambda c: ["run", _yaml(c, b"name: \xff\xfe\n")], ["cfg.yaml", "not valid UTF-8"]),
    "config-file-missing": (lambda c: ["run", str(c.tmp / "nope.yaml")], ["nope.yaml", "config file not found"]),
    "unknown-nested-key-yaml": (lambda c: ["run", _yaml(c, "train:\n  lora:\n    rank: 3\n")],
                                ["cfg.yaml", "unknown config key 'train.lora.rank'", "known here:", "r,"]),
    "unknown-nested-key-set": (lambda c: ["config", "--set", "generate.sampling.top_p=0.5"],
                               ["unknown config key 'generate.sampling'"]),
    "set-without-equals": (lambda c: ["run", "--set", "train.epochs"], ["--set expects key=value", "'train.epochs'"]),
    "wrong-type-int": (lambda c: c.run_args(train__max_steps="many"),
                       ["config key 'train.max_steps'", "expected an integer", "'many'"]),
    "wrong-type-section": (lambda c: ["config", "--set", "train=3"], ["config key 'train'", "expected a mapping"]),
    "gamma-above-1": (lambda c: c.run_args(build__gamma="[0.0, 1.5]"),
                      ["config key 'build.gamma'", "[0, 1]", "1.5"]),
    "gamma-negative": (lambda c: c.run_args(build__gamma="-0.1"), ["config key 'build.gamma'", "[0, 1]", "-0.1"]),
    "unknown-model": (lambda c: c.run_args(model__name="no-such-model"),
                      ["config key 'model.name'", "unknown model 'no-such-model'", "registry name"]),
    "missing-model-folder": (lambda c: c.run_args(model__name=str(c.tmp / "gone" / "model")),
                             ["config key 'model.name'", "model folder not found"]),
    "unknown-judge-config": (lambda c: c.run_args(judge__judges="[tbr, oracle]"),
                             ["config key 'judge.judges'", "unknown judge 'oracle'", "known:"]),
    "unknown-suite": (lambda c: ["eval", "--suite", "nosuchsuite", *c.run_args("eval")[1:]],
                      ["config key 'data.eval'", "unknown suite 'nosuchsuite'"]),
    "unknown-reflection-source": (lambda c: c.run_args("reflect", ["--source", "oracle"]),
                                  ["config key 'reflect.source'", "unknown source 'oracle'", "internal"]),
    "unwritable-runs-dir": (lambda c: c.run_args(runs_dir=str(write(c.tmp / "file.txt", "x") / "sub")),
                            ["file.txt/sub", "cannot use run directory"]),
    # data files given to `tbr run` (failing in the data stage: no stage folder is left)
    "train-jsonl-bad-middle-line": (
        lambda c: c.run_args(data__safety__source=str(write(c.tmp / "s.jsonl", jsonl([SAF[0], "{oops", SAF[1]])))),
        ["s.jsonl:2:", "not valid JSON"]),
    "train-missing-field": (
        lambda c: c.run_args(data__general__source=str(write(
            c.tmp / "g.jsonl", jsonl([GEN[0], {"id": "g9", "prompt": "hi"}, GEN[1]])))),
        ["g.jsonl:2:", "field 'response'", "expected a non-empty string, missing"]),
    "train-wrong-type": (
        lambda c: c.run_args(data__safety__source=str(write(c.tmp / "s.jsonl", jsonl([SAF[0], {**SAF[1], "prompt": 7}])))),
        ["s.jsonl:2:", "field 'prompt'", "expected a non-empty string, got 7"]),
    "train-empty-prompt": (
        lambda c: c.run_args(data__general__source=str(write(
            c.tmp / "g.jsonl", jsonl([GEN[0], GEN[1], {**GEN[2], "prompt": "   "}])))),
        ["g.jsonl:3:", "field 'prompt'", "expected a non-empty string"]),
    "train-not-utf8": (
        lambda c: c.run_args(data__general__source=str(write(
            c.tmp / "g.jsonl", jsonl(GEN[:2]).encode() + b'{"id": "x", "prompt": "caf\xe9", "response": "r"}\n'))),
        ["g.jsonl:3:", "not valid UTF-8"]),
    "train-duplicate-ids": (
        lambda c: c.run_args(data__general__source=str(write(c.tmp / "g.jsonl", jsonl([GEN[0], GEN[1], GEN[0]])))),
        ["g.jsonl", "field 'id'", "duplicate id 'g0'"]),
    "train-empty-file": (lambda c: c.run_args(data__safety__source=str(write(c.tmp / "s.jsonl", ""))),
                         ["data.safety", "gave no rows"]),
    "train-missing-path": (lambda c: c.run_args(data__general__source=str(c.tmp / "nowhere" / "g.jsonl")),
                           ["nowhere/g.jsonl", "file not found"]),
    "train-unknown-source": (lambda c: c.run_args(data__general__source="no-such-set"),
                             ["unknown source 'no-such-set'", "registered public set"]),
    "eval-csv-wrong-columns": (
        lambda c: c.run_args(data__eval=f"[{write(c.tmp / 'ev.csv', 'question,answer' + chr(10) + 'hi,safe' + chr(10))}]"),
        ["ev.csv", "column 'prompt'", "not found", "columns are: answer, question"]),
    "eval-bad-label": (
        lambda c: c.run_args(data__eval=f"[{write(c.tmp / 'ev.jsonl', jsonl([{'prompt': 'a', 'label': 'safe'}, {'prompt': 'b', 'label': 'maybe'}]))}]"),
        ["ev.jsonl:2:", "field 'label'", "expected safe or unsafe", "'maybe'"]),
    "eval-duplicate-ids": (
        lambda c: c.run_args(data__eval=f"[{write(c.tmp / 'ev.jsonl', jsonl([{'id': 1, 'prompt': 'a', 'label': 'safe'}, {'id': 1, 'prompt': 'b', 'label': 'unsafe'}]))}]"),
        ["ev.jsonl", "field 'id'", "duplicate id '1'"]),
    "eval-empty-file": (lambda c: c.run_args(data__eval=f"[{write(c.tmp / 'ev.jsonl', '')}]"),
                        ["suite", "has no prompts"]),
    "builtin-reflections-missing": (
        lambda c: c.run_args("reflect", data__safety__source=str(write(
            c.tmp / "s.jsonl", jsonl([{k: v for k, v in r.items() if k != "reflection"} for r in SAF])))),
        ["reflect.source 'builtin' needs hand-written reflections"]),
    # tbr judge
    "judge-bad-middle-line": (lambda c: c.judge(jsonl([JUDGE_ROWS[0], "not json", JUDGE_ROWS[1]])),
                              ["in.jsonl:2:", "not valid JSON"]),
    "judge-not-an-object": (lambda c: c.judge(jsonl([JUDGE_ROWS[0], "[1, 2]"])),
                            ["in.jsonl:2:", "expected a JSON object per line"]),
    "judge-missing-field": (lambda c: c.judge(jsonl([JUDGE_ROWS[0], {"id": "9", "prompt": "p"}])),
                            ["in.jsonl:2:", "field 'response'", "missing; expected a string"]),
    "judge-wrong-type": (lambda c: c.judge(jsonl([JUDGE_ROWS[0], JUDGE_ROWS[1], {**JUDGE_ROWS[2], "response": None}])),
                         ["in.jsonl:3:", "field 'response'", "expected a string, got null"]),
    "judge-empty-prompt": (lambda c: c.judge(jsonl([JUDGE_ROWS[0], {**JUDGE_ROWS[1], "prompt": ""}])),
                           ["in.jsonl:2:", "field 'prompt'", "must not be empty"]),
    "judge-not-utf8": (lambda c: c.judge(jsonl(JUDGE_ROWS[:2]).encode() + b'{"prompt": "\xc3(", "response": "x"}\n'),
                       ["in.jsonl:3:", "not valid UTF-8"]),
    "judge-duplicate-ids": (lambda c: c.judge(jsonl([JUDGE_ROWS[0], JUDGE_ROWS[1], JUDGE_ROWS[0]])),
                            ["in.jsonl:3:", "field 'id'", "duplicate id '0'"]),
    "judge-empty-file": (lambda c: c.judge(""), ["in.jsonl", "no rows to judge"]),
    "judge-missing-input": (lambda c: c.judge(None, name="absent.jsonl"), ["absent.jsonl", "file not found"]),
    "judge-unknown-judge": (lambda c: c.judge(jsonl(JUDGE_ROWS), extra=["--judge", "oracle"]),
                            ["unknown judge 'oracle'", "known: keywords"]),
    "judge-unwritable-output": (
        lambda c: ["judge", "--input", str(write(c.tmp / "in.jsonl", jsonl(JUDGE_ROWS))),
                   "--output", str(write(c.tmp / "file.txt", "x") / "sub" / "o.jsonl")],
        ["file.txt/sub", "cannot create output folder"]),
    "judge-output-in-proc": (
        lambda c: ["judge", "--input", str(write(c.tmp / "in.jsonl", jsonl(JUDGE_ROWS))),
                   "--output", "/proc/tbr-test/o.jsonl"],
        ["/proc/tbr-test", "cannot create output folder"]),
    # tbr judge-eval
    "judge-eval-bad-label": (
        lambda c: [*_judge_eval(c), "--labels", str(write(c.tmp / "lab.jsonl", jsonl(
            [{"prompt": "p", "response": "r", "label": "full_compliance"}, {"prompt": "p", "response": "r", "label": "yes"}])))],
        ["lab.jsonl:2:", "field 'label'", "expected one of full_compliance"]),
    "judge-eval-missing-field": (
        lambda c: [*_judge_eval(c), "--labels", str(write(c.tmp / "lab.jsonl", jsonl([{"prompt": "p", "label": "x"}])))],
        ["lab.jsonl:1:", "field 'response'", "missing"]),
    "judge-eval-unknown-judge": (lambda c: [*_judge_eval(c), "--judge", "tbr", "--judge", "oracle"],
                                 ["unknown judge 'oracle'"]),
    "judge-eval-unwritable-output": (
        lambda c: ["judge-eval", "--judge", "keywords", "--output", str(write(c.tmp / "file.txt", "x") / "sub")],
        ["file.txt/sub", "cannot create output folder"]),
    # tbr report / compare / data
    "report-no-metrics": (lambda c: _report(c, None), ["no evaluate/metrics.json", "run the evaluate stage first"]),
    "report-corrupt-metrics": (lambda c: _report(c, '{"models": {'), ["evaluate/metrics.json", "not valid JSON"]),
    "report-foreign-metrics": (lambda c: _report(c, '{"accuracy": 0.5}'),
                               ["evaluate/metrics.json", "expected tbr's metrics"]),
    "compare-missing-run": (lambda c: _compare(c), ["no-such-run", "no such run folder"]),
    "data-show-missing-file": (lambda c: ["data", "show", f"xstest:{c.tmp / 'x.csv'}"], ["x.csv", "file not found"]),
}


def _judge_eval(c: Ctx) -> list[str]:
    out = c.tmp / "je"
    c.checks.append(nothing_at(out))
    return ["judge-eval", "--output", str(out)]


def _report(c: Ctx, metrics: str | None) -> list[str]:
    run = c.tmp / "somerun"
    run.mkdir()
    if metrics is not None:
        write(run / "evaluate" / "metrics.json", metrics)

    def check() -> None:
        assert sorted(p.name for p in run.iterdir()) == (["evaluate"] if metrics is not None else [])
    c.checks.append(check)
    return ["report", str(run)]


def _compare(c: Ctx) -> list[str]:
    out = c.tmp / "cmp"
    c.checks.append(nothing_at(out))
    return ["compare", str(c.tmp / "no-such-run"), "--output", str(out)]


# Input that only a later stage can judge (here: the reflection source against the safety rows)
# fails after earlier stages logged their progress: stderr is then those `tbr: <stage> ...` lines
# and one error line, last. Every other case fails before anything runs: stderr is one line.
AFTER_PROGRESS = {"builtin-reflections-missing"}


def one_error_line(err: str, after_progress: bool = False) -> str:
    assert "Traceback" not in err, err
    lines = err.strip("\n").splitlines()
    if after_progress:
        assert all(x.startswith("tbr: ") for x in lines), err
        assert sum(x.startswith("tbr: error:") for x in lines) == 1, err
        lines = lines[-1:]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("tbr: error: "), lines[0]
    return lines[0]


@pytest.fixture
def ctx(tmp_path, tiny_model, tiny_data, monkeypatch) -> Ctx:
    monkeypatch.chdir(tmp_path)  # no configs/demo.yaml from the repository
    return Ctx(tmp_path, tiny_model, tiny_data, tmp_path / "runs")


def test_catalogue_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input(case, ctx, capsys):
    make, fragments = CASES[case]
    argv = make(ctx)
    rc = main(argv)
    out, err = capsys.readouterr()
    line = one_error_line(err, case in AFTER_PROGRESS)
    assert rc == 2, (rc, line)
    for frag in fragments:
        assert frag in line, f"{frag!r} not in {line!r}"
    for check in ctx.checks:
        check()


# ---- the real CLI in a subprocess: exit status, stderr bytes, --debug --------------------------

def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "tbr", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("case", ["judge-bad-middle-line", "gamma-above-1", "train-jsonl-bad-middle-line"])
def test_subprocess_exit_2_one_line(case, ctx):
    argv = CASES[case][0](ctx)
    p = cli(argv, ctx.tmp)
    assert p.returncode == 2, p.stderr
    line = one_error_line(p.stderr)
    for frag in CASES[case][1]:
        assert frag in line
    for check in ctx.checks:
        check()


def test_debug_shows_the_traceback(ctx):
    argv = CASES["judge-missing-field"][0](ctx)
    p = cli(["--debug", *argv], ctx.tmp)
    assert p.returncode == 1  # --debug re-raises: Python's own exit status for an uncaught exception
    assert "Traceback" in p.stderr and "TbrError" in p.stderr and "field 'response'" in p.stderr
    for check in ctx.checks:
        check()


# ---- a corrupt checkpoint: train resumes from a checkpoint folder whose files are garbage ---------

def test_corrupt_checkpoint(ctx, capsys):
    items = tiny_overrides(ctx.model, ctx.data, ctx.runs, "ck") + ["build.gamma=[1.0]", "train.max_steps=2",
                                                                   "train.save_steps=1"]
    assert main(["train", *sets(items), "--no-progress"]) == 0
    (tdir,) = (ctx.runs / "ck" / "train").iterdir()
    (tdir / "manifest.json").unlink()  # as if killed after checkpoint 1
    ck = tdir / "checkpoints" / "checkpoint-1"
    ck.mkdir(parents=True)
    write(ck / "trainer_state.json", json.dumps({"global_step": 1, "log_history": []}))
    from tbr.stages.train import COMPLETE
    write(ck / COMPLETE, json.dumps({"step": 1}))  # claims to be a fully written checkpoint
    for name in ("adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt",
                 "rng_state.pth", "training_args.bin"):
        write(ck / name, os.urandom(256))
    capsys.readouterr()
    rc = main(["train", *sets(items), "--no-progress"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    errors = [x for x in err.splitlines() if x.startswith("tbr: error:")]
    assert rc == 2 and len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert "checkpoint-1" in errors[0] and "corrupt" in errors[0] and "delete" in errors[0], errors[0]
    assert not (tdir / "manifest.json").exists()  # the stage is not marked finished


# ---- by class: every config key, wrong type and out of range -----------------------------------
# Generated from the ranges declared beside each key's help text (tbr.config._f), so a new key
# gets its cases for free, and a range that stops being enforced fails here.

def _leaf_fields():
    import dataclasses
    import typing

    from tbr.config import ExperimentConfig

    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                yield from walk(tp, f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}", tp, f.metadata
    return list(walk(ExperimentConfig))


def _base(tp):
    import typing
    if typing.get_origin(tp) is dict:
        return dict, None
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is list:
        return list, args[0]
    if args:
        return args[0], None
    return tp, None


def _wrong_type_cases():
    out = []
    for key, tp, _ in _leaf_fields():
        base, item = _base(tp)
        kind = item if base is list else base
        if kind in (int, float):
            out.append((key, "[many]" if base is list else "many", "expected a"))
        elif kind is bool:
            out.append((key, "maybe", "expected true or false"))
        elif kind is str:
            out.append((key, "{a: 1}" if base is not list else "[{a: 1}]", "expected a string"))
        elif base is dict:
            out.append((key, "3", "expected a mapping"))
    return out


def _out_of_range_cases():
    out = []
    for key, tp, meta in _leaf_fields():
        base, item = _base(tp)
        kind = item if base is list else base
        wrap = (lambda v: f"[{v}]") if base is list else (lambda v: str(v))
        r = meta.get("range") or {}
        if "ge" in r:
            out.append((key, wrap(r["ge"] - 1 if kind is int else r["ge"] - 0.5), "expected a value"))
        if "gt" in r:
            out.append((key, wrap(r["gt"]), "expected a value"))
        if "le" in r:
            out.append((key, wrap(r["le"] + 1 if kind is int else r["le"] + 0.5), "expected a value"))
        if "lt" in r:
            out.append((key, wrap(r["lt"]), "expected a value"))
        if meta.get("not_zero"):
            out.append((key, wrap(0), "not 0"))
        if meta.get("choices"):
            out.append((key, wrap("no-such-choice"), "expected one of"))
    return out


WRONG_TYPE = _wrong_type_cases()
OUT_OF_RANGE = _out_of_range_cases()


def test_every_number_key_declares_a_range():
    """A numeric key without a declared range would accept anything (train.epochs=-1 trained
    zero steps and reported 'done'). Keys that may truly take any value are listed here."""
    free = {"evaluate.general_limit"} - {"evaluate.general_limit"}  # none at present
    missing = [key for key, tp, meta in _leaf_fields()
               if (_base(tp)[0] in (int, float) or _base(tp)[1] in (int, float))
               and not (meta.get("range") or meta.get("choices")) and key not in free]
    assert not missing, missing
    assert len(OUT_OF_RANGE) >= 30 and len(WRONG_TYPE) >= 40


@pytest.mark.parametrize("key,value,fragment", WRONG_TYPE + OUT_OF_RANGE,
                         ids=[f"{k}={v}" for k, v, _ in WRONG_TYPE + OUT_OF_RANGE])
def test_config_key_refused_before_any_work(key, value, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    rc = main(["run", "--set", f"runs_dir={runs}", "--set", f"{key}={value}", "--no-progress"])
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2
    assert f"'{key.split('.')[0]}" in line and fragment in line, line
    assert not runs.exists(), "a refused config left a run folder"


# ---- by class: every user-facing path argument ---------------------------------------------------
# (missing, folder for a file, file for a folder, unreadable, equal to an output) for each path
# argument of each command. "Unreadable" is a file that cannot be read as text: the tests run as
# root, for whom a chmod 000 file is still readable.

BINARY = b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00garbage"


def _path_case(c: Ctx, arg: str, kind: str):
    """(argv, inputs that must be unchanged, outputs that must not appear, fragment of the line)."""
    t = c.tmp
    good_judge_in = write(t / "in.jsonl", jsonl(JUDGE_ROWS))
    labels = write(t / "lab.jsonl", jsonl([{"prompt": "p", "response": "Sure: x.", "label": "full_compliance"}]))
    folder = t / "afolder"
    folder.mkdir(exist_ok=True)
    afile = write(t / "afile.txt", "x")
    binary = write(t / "bin.jsonl", BINARY)
    missing = t / "nowhere" / "x.jsonl"
    pick = {"missing": missing, "folder": folder, "file": afile, "unreadable": binary}
    if arg == "config":
        bad = pick[kind] if kind != "unreadable" else write(t / "bin.yaml", BINARY)
        return ["run", str(bad)], [], [t / "runs"], None
    if arg in ("data.general.source", "data.safety.source", "data.eval"):
        if kind == "alias":  # an input file inside the folder the run rewrites
            bad = write(c.runs / "bad" / "data" / "mine.jsonl", jsonl(GEN))
        else:
            bad = pick[kind]
        value = f"[{bad}]" if arg == "data.eval" else str(bad)
        argv = c.run_args(**{arg.replace(".", "__"): value})
        if kind == "alias":  # the run folder holds the user's file: it stays, and so does the folder
            c.checks.clear()
        return argv, ([bad] if bad.is_file() else []), [], None
    if arg == "model.name":
        bad = {"missing": t / "gone" / "model", "file": afile, "folder": folder, "alias": c.model}[kind]
        extra = {}
        if kind == "alias":  # the run folder inside the model folder
            extra = {"runs_dir": str(c.model / "runs")}
        argv = c.run_args(model__name=str(bad), **extra)
        return argv, [], [c.model / "runs"] if kind == "alias" else [], None
    if arg == "judge --input":
        out = t / "out" / "j.jsonl"
        bad = good_judge_in if kind == "alias" else pick[kind]
        return (["judge", "--input", str(bad), "--output", str(good_judge_in if kind == "alias" else out)],
                [good_judge_in], [] if kind == "alias" else [out], None)
    if arg == "judge --output":
        bad = {"folder": folder, "file": write(t / "plain.txt", "x") / "o.jsonl"}[kind]
        return ["judge", "--input", str(good_judge_in), "--output", str(bad)], [good_judge_in], [], None
    if arg == "judge-eval --labels":
        out = t / "je"
        bad = labels if kind == "alias" else pick[kind]
        return (["judge-eval", "--judge", "keywords", "--labels", str(bad), "--output", str(labels if kind == "alias" else out)],
                [labels], [] if kind == "alias" else [out], None)
    if arg == "judge-eval --output":
        return (["judge-eval", "--judge", "keywords", "--labels", str(labels), "--output", str(afile)],
                [labels, afile], [], None)
    if arg == "report RUN_DIR":
        bad = pick[kind]
        return ["report", str(bad)], [], [t / "report.md"], None
    if arg == "compare RUN_DIR":
        out = t / "cmp"
        return ["compare", str(pick[kind]), "--output", str(out)], [], [out], None
    raise AssertionError(arg)


PATH_CASES = [
    *[("config", k) for k in ("missing", "folder", "unreadable")],
    *[(a, k) for a in ("data.general.source", "data.safety.source", "data.eval")
      for k in ("missing", "folder", "unreadable", "alias")],
    *[("model.name", k) for k in ("missing", "file", "folder", "alias")],
    *[("judge --input", k) for k in ("missing", "folder", "unreadable", "alias")],
    *[("judge --output", k) for k in ("folder", "file")],
    *[("judge-eval --labels", k) for k in ("missing", "folder", "unreadable", "alias")],
    ("judge-eval --output", "file"),
    *[("report RUN_DIR", k) for k in ("missing", "file")],
    *[("compare RUN_DIR", k) for k in ("missing", "file")],
]


@pytest.mark.parametrize("arg,kind", PATH_CASES, ids=[f"{a}:{k}" for a, k in PATH_CASES])
def test_path_argument_classes(arg, kind, ctx, capsys):
    import hashlib
    import time
    argv, inputs, outputs, _ = _path_case(ctx, arg, kind)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs}
    t0 = time.perf_counter()
    rc = main(argv)
    line = one_error_line(capsys.readouterr().err)
    assert rc == 2, line
    assert time.perf_counter() - t0 < 20, "a bad path should be refused within seconds"
    for p, h in before.items():
        assert p.exists() and hashlib.sha256(p.read_bytes()).hexdigest() == h, f"input {p} was changed"
    for p in outputs:
        assert not p.exists(), f"{p} was written"
    for check in ctx.checks:
        check()
