"""Same config and seed, two fresh run directories: byte-identical metrics.json (CPU, float32).

Scope: one machine. bf16 and even fp32 kernels round differently on other CPU families (ATen's
AVX2 vs AVX-512 loops, MKL's per-ISA GEMM), so this test says nothing about reruns elsewhere;
`--deterministic` is what covers that (tests/test_nothing_lost.py pins it on two kernel paths),
and every manifest records the machine it ran on."""
from __future__ import annotations

import json

import pytest

from conftest import tiny_overrides
from test_kill import run_tbr


@pytest.mark.timeout(240)
def test_two_fresh_runs_on_one_machine_give_identical_metrics(tmp_path, tiny_model, tiny_data):
    roots = []
    for name, cwd in (("one", tmp_path), ("two", tmp_path / "elsewhere")):
        cwd.mkdir(exist_ok=True)
        # different run names, folders and working directories: none of that may leak into metrics
        cfg = tiny_overrides(tiny_model, tiny_data, tmp_path / f"runs-{name}", name) + [
            "build.gamma=[0.0, 1.0]", "reflect.source=[builtin, shuffled]", "evaluate.bootstrap=200"]
        p = run_tbr(cfg, cwd, timeout=200)
        assert p.returncode == 0, p.stderr[-3000:]
        roots.append(tmp_path / f"runs-{name}" / name)
    a, b = (r / "metrics.json" for r in roots)
    assert a.read_bytes() == b.read_bytes()
    assert (roots[0] / "evaluate" / "metrics.json").read_bytes() == a.read_bytes()
    m = json.loads(a.read_text())
    assert m["paired"], "the bootstrap comparisons should be in the metrics"
    # and the row files behind them
    for f in sorted(roots[0].rglob("*.jsonl")):
        assert f.read_bytes() == (roots[1] / f.relative_to(roots[0])).read_bytes(), f
