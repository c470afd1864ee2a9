"""Code health inside `make test`: the import contracts (layers, a report that loads no model,
no cycles), ruff, mypy, and the size and import rules of the package.

The contracts live in pyproject.toml ([tool.importlinter]); a broken one fails here with
import-linter's own explanation."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "tbr"
BIN = Path(sys.executable).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _tool(name: str) -> str:
    exe = BIN / name
    assert exe.exists(), f"{name} is not installed: it is in the test extra (pip install -e '.[test]')"
    return str(exe)


def _run(cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def test_import_contracts_hold() -> None:
    r = _run([_tool("lint-imports")])
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    for name in ("Layers", "The report reads files", "No import cycles"):
        assert f"{name}" in r.stdout and "KEPT" in r.stdout
    assert "3 kept, 0 broken" in r.stdout, r.stdout[-2000:]


def _lint_copy(tmp: Path, edit: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    """import-linter on a copy of the package with one line added to one module."""
    shutil.copytree(SRC, tmp / "tbr", ignore=shutil.ignore_patterns("__pycache__", "*.npz", "builtin"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    rel, line = edit
    p = tmp / "tbr" / rel
    p.write_text(p.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    # the copy comes first on the path, so the graph is built from it, not from the installed tbr
    env = {"PATH": str(BIN), "PYTHONPATH": str(tmp), "HOME": str(tmp)}
    return _run([_tool("lint-imports"), "--no-cache"], cwd=tmp, env=env)


def test_a_report_module_importing_model_code_breaks_the_contract(tmp_path: Path) -> None:
    r = _lint_copy(tmp_path, ("report/common.py", "import tbr.models  # a report that loads models"))
    assert r.returncode != 0, r.stdout[-3000:]
    assert "The report reads files: no torch, no transformers, no model code BROKEN" in r.stdout, r.stdout[-3000:]
    assert "tbr.report.common -> tbr.models" in r.stdout, r.stdout[-3000:]


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path: Path) -> None:
    r = _lint_copy(tmp_path, ("judges/keywords.py", "from tbr import pipeline  # a judge reaching up"))
    assert r.returncode != 0
    assert "Layers: cli > pipeline > stages > review > judges, suites, data, report > core BROKEN" in r.stdout, r.stdout[-3000:]


def test_ruff_is_clean() -> None:
    r = _run([_tool("ruff"), "check", "src", "tests", "scripts", "benchmarks"])
    assert r.returncode == 0, r.stdout[-4000:]


@pytest.mark.timeout(600)
def test_mypy_is_clean() -> None:
    r = _run([_tool("mypy")])  # files and settings: [tool.mypy] in pyproject.toml
    assert r.returncode == 0, r.stdout[-4000:]


def _modules() -> list[tuple[Path, ast.Module, list[str]]]:
    out = []
    for p in sorted(SRC.rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        out.append((p, ast.parse(text), text.split("\n")))
    return out


def _commented(lines: list[str], first: int, last: int) -> bool:
    """A `#` comment on the statement's lines or on the line just above it."""
    above = lines[first - 2].strip() if first >= 2 else ""
    return any("#" in ln for ln in lines[first - 1:last]) or above.startswith("#")


def test_no_module_over_400_lines() -> None:
    big = [f"{p.relative_to(SRC)}: {len(lines)}" for p, _, lines in _modules() if len(lines) > MAX_MODULE_LINES]
    assert not big, big


def test_no_function_over_60_lines_unless_a_comment_says_why() -> None:
    long = []
    for p, tree, lines in _modules():
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = f.end_lineno - f.lineno + 1  # type: ignore[operator]
                if n > MAX_FUNCTION_LINES and not _commented(lines, f.lineno, f.lineno):
                    long.append(f"{p.relative_to(SRC)}:{f.lineno} {f.name} ({n} lines)")
    assert not long, long


def test_function_local_imports_say_why() -> None:
    """Module-level imports are the default; one inside a function carries a comment saying
    why (a heavy library kept off `tbr --help`, an optional extra, a monkeypatched global)."""
    bare = []
    for p, tree, lines in _modules():
        for f in ast.walk(tree):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(f):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not _commented(lines, node.lineno,
                                                                                       node.end_lineno or node.lineno):
                    bare.append(f"{p.relative_to(SRC)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not bare, bare


def test_cli_imports_no_heavy_library() -> None:
    """`tbr --help` and a bad-input error stay fast, and --deterministic can pin the kernels
    before torch loads: importing the CLI (and through it every stage) loads no torch."""
    code = ("import sys, tbr.cli; heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', "
            "'matplotlib', 'lm_eval', 'sklearn') if m in sys.modules]; print(heavy)")
    r = _run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]", r.stdout
