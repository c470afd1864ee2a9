"""General ability through lm-eval: the shipped offline task on the tiny model, plain and as a
LoRA adapter, fully offline (conftest sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
import lm_eval  # noqa: E402,F401  (in the test extra: a broken install must fail here, not skip 8 tests)

from tbr import metrics  # noqa: E402
from tbr.errors import TbrError  # noqa: E402
from tbr.stages import general as G  # noqa: E402


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model, saved the way peft saves one (base recorded inside)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(out)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model)
    return out


@pytest.fixture(scope="module")
def general_run(tiny_model: Path, adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("general")
    res = G.run_general(out, {"untouched": str(tiny_model), "tbr": str(adapter)}, [G.SMOKE_TASK], 5,
                        batch_size=8, dtype="float32", device="cpu")
    return out, res


def test_shipped_task_data_is_well_formed(tmp_path):
    d = G.write_local_tasks(tmp_path / "inc")
    rows = [json.loads(x) for x in (d / "tbr_arc_mini.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) >= 40
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["question"] for r in rows}) == len(rows)
    for r in rows:
        assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
        assert isinstance(r["answer"], int) and 0 <= r["answer"] < 4
    counts = [sum(r["answer"] == k for r in rows) for k in range(4)]
    assert max(counts) - min(counts) <= 2  # a constant guess scores about chance
    import yaml
    cfg = yaml.safe_load((d / "tbr_arc_mini.yaml").read_text())
    path = cfg["dataset_kwargs"]["data_files"]["test"]
    assert cfg["task"] == G.SMOKE_TASK and Path(path).is_absolute() and Path(path).exists()


def test_run_general_tiny_model_and_lora_adapter(general_run, adapter):
    out, res = general_run
    assert set(res) == {"untouched", "tbr"}
    on_disk = json.loads((out / "general.json").read_text())
    assert on_disk == res
    for label in res:
        tm = res[label][G.SMOKE_TASK]
        assert 0.0 <= tm["acc"] <= 1.0 and 0.0 <= tm["acc_norm"] <= 1.0
        assert tm["n"] == 5
        assert metrics.primary_metric(tm) == "acc"
        assert all(v is None or isinstance(v, (int, float)) for v in tm.values())
    # the adapter went to lm-eval as pretrained=<base> + peft=<adapter>
    raw = json.loads((out / "lmeval" / "tbr.json").read_text())
    assert raw["settings"]["model_args"]["peft"] == str(adapter)
    assert raw["settings"]["model_args"]["pretrained"] == json.loads(
        (adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert "peft" not in json.loads((out / "lmeval" / "untouched.json").read_text())["settings"]["model_args"]


def test_rerun_with_same_settings_reuses_results(general_run, tiny_model, adapter, monkeypatch):
    out, res = general_run
    import lm_eval

    def boom(*a, **k):
        raise AssertionError("should not evaluate again")
    monkeypatch.setattr(lm_eval, "simple_evaluate", boom)
    again = G.run_general(out, {"untouched": str(tiny_model), "tbr": str(adapter)}, [G.SMOKE_TASK], 5,
                          dtype="float32", device="cpu")
    assert again == res
    with pytest.raises(AssertionError, match="should not evaluate"):   # other settings: evaluated anew
        G.run_general(out, {"untouched": str(tiny_model)}, [G.SMOKE_TASK], 4, dtype="float32", device="cpu")


def test_cli_general(tiny_model, tmp_path, capsys):
    from tbr.cli import main
    out = tmp_path / "g"
    rc = main(["general", "--model", f"base={tiny_model}", "--tasks", G.SMOKE_TASK, "--limit", "3",
               "--output", str(out), "--dtype", "float32", "--device", "cpu"])
    assert rc == 0
    res = json.loads((out / "general.json").read_text())
    assert 0.0 <= res["base"][G.SMOKE_TASK]["acc"] <= 1.0 and res["base"][G.SMOKE_TASK]["n"] == 3
    assert "base\ttbr_arc_mini\tacc " in capsys.readouterr().out


def test_label_models():
    from tbr.commands.general import _label_models
    assert _label_models(["smollm2-135m", "a=owner/model", "owner/model", "x/run/train"]) == {
        "smollm2-135m": "smollm2-135m", "a": "owner/model", "model": "owner/model", "train": "x/run/train"}
    assert list(_label_models(["p/m", "q/m"])) == ["m", "m-2"]


def test_missing_lm_eval_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(TbrError, match=r"needs lm-eval: pip install 'tbr\[eval\]'"):
        G.run_general(tmp_path, {"m": "x"}, [G.SMOKE_TASK], 1)


def test_unknown_task_is_a_clear_error():
    class FakeTM:
        def __init__(self, include_path=None, include_defaults=True):
            self.all_tasks = [G.SMOKE_TASK] + (["arc_easy"] if include_defaults else [])
    assert G._task_manager(FakeTM, [G.SMOKE_TASK], []).all_tasks == [G.SMOKE_TASK]   # built-ins not indexed
    assert "arc_easy" in G._task_manager(FakeTM, ["arc_easy"], []).all_tasks
    with pytest.raises(TbrError, match="unknown lm-eval task.*nope"):
        G._task_manager(FakeTM, ["nope"], [])


def test_summarize_groups_filters_and_json_safety():
    nan = float("nan")
    res = {"results": {"mmlu": {"acc,none": 0.5, "acc_stderr,none": 0.01, "alias": "mmlu"},
                       "mmlu_stem": {"acc,none": 0.4, "acc_stderr,none": 0.02},
                       "mmlu_physics": {"acc,none": 0.3, "acc_stderr,none": "N/A"},
                       "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.05,
                                 "exact_match,flexible-extract": 0.3, "exact_match_stderr,flexible-extract": nan}},
           "group_subtasks": {"mmlu": ["mmlu_stem"], "mmlu_stem": ["mmlu_physics"], "gsm8k": []},
           "n-samples": {"mmlu_physics": {"effective": 7, "original": 100}, "gsm8k": {"effective": 20}}}
    s = G.summarize(res)
    assert s == {"mmlu": {"acc": 0.5, "acc_stderr": 0.01, "n": 7},
                 "gsm8k": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.05,
                           "exact_match,flexible-extract": 0.3, "exact_match_stderr,flexible-extract": None,
                           "n": 20}}
    assert metrics.primary_metric(s["gsm8k"]) == "exact_match,strict-match"
    assert metrics.stderr_key("exact_match,strict-match") == "exact_match_stderr,strict-match"
    assert metrics.stderr_key("acc") == "acc_stderr"
    json.dumps(G._json_safe(res), allow_nan=False)
