"""Every shipped config parses and validates offline (torchtune's test_configs idea), and the
grid configs describe the experiments their header comments promise."""
from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
import yaml

from tbr.config import load_config
from tbr.grid import cell_label, cells
from tbr.study import load_study

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("config validation tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def iter_header(text: str):
    for line in text.splitlines():
        if not line.startswith("#"):
            return
        yield line


def test_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "gamma-sweep.yaml", "prompting-study.yaml", "paper.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_offline(path: Path, no_network: None) -> None:
    text = path.read_text(encoding="utf-8")
    # a study (configs/study.yaml) holds several experiment configs: each must load and expand
    cfgs = ([e.config for e in load_study(path).experiments] if "experiments" in yaml.safe_load(text)
            else [load_config(path)])
    assert all(cfg.name for cfg in cfgs)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "a shipped config opens with a header comment"
    header = "\n".join(iter_header(text))
    assert "tbr run" in header or "accelerate launch" in header or "make " in header, \
        "the header comment gives the launch command"
    # the grid expands without touching the network either
    for cfg in cfgs:
        cells(cfg)


def test_gamma_sweep_grid() -> None:
    cfg = load_config(Path(CONFIGS[0]).parent / "gamma-sweep.yaml")
    assert {0.0, 0.5, 1.0} <= set(cfg.build.gamma)
    assert cfg.model.name == "smollm2-135m"
    labels = [cell_label(c, cfg) for c in cells(cfg)]
    assert labels[0] == "baseline" and len(labels) == len(set(cfg.build.gamma))
    assert cfg.data.general.limit <= 200 and cfg.data.safety.limit <= 70 and cfg.data.eval_limit <= 200


def test_prompting_study_has_no_training_cells() -> None:
    cfg = load_config(Path(CONFIGS[0]).parent / "prompting-study.yaml")
    assert cfg.build.gamma == [] and cells(cfg) == []
    assert cfg.generate.modes == ["direct", "cot"] and cfg.generate.untouched
    assert "xstest" in cfg.data.eval


def test_paper_recipe() -> None:
    cfg = load_config(Path(CONFIGS[0]).parent / "paper.yaml")
    t = cfg.train
    assert (t.lora.r, t.lora.alpha, t.lora.dropout, t.lora.target_modules) == (8, 16, 0.05, ["q_proj", "v_proj"])
    assert (t.learning_rate, t.epochs, t.max_length) == (3e-4, 3.0, 256)
    assert t.batch_size * t.grad_accum == 128
    assert (cfg.data.general.source, cfg.data.general.limit) == ("alpaca", 1800)
    assert cfg.data.safety.limit == 200
    assert cfg.data.eval == ["xstest", "orbench-hard", "maliciousinstruct"]
    assert cfg.evaluate.general_tasks == ["mmlu", "gsm8k", "arc_easy"]
    assert "external" in cfg.reflect.source and cfg.generate.backend == "vllm"
    assert cfg.build.template == "alpaca"
    assert [cell_label(c, cfg) for c in cells(cfg)] == ["baseline", "tbr-internal", "tbr-external"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_grid_status_before_any_run(path: Path, tmp_path: Path) -> None:
    from tbr.grid_status import cell_status, format_status
    if "experiments" in yaml.safe_load(path.read_text(encoding="utf-8")):
        cfgs = [dataclasses.replace(e.config, runs_dir=str(tmp_path)) for e in load_study(path).experiments]
    else:
        cfgs = [load_config(path, [f"runs_dir={tmp_path}"])]
    for cfg in cfgs:
        rows = cell_status(cfg)
        assert len([r for r in rows if r["key"]]) == len(cells(cfg))
        assert all(r["done"] == [] for r in rows)
        assert "grid status" in format_status(cfg)
