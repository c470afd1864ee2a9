"""`tbr reflect --source S` for the offline sources, and the controls' exact behaviour."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_overrides
from tbr.cli import main
from tbr.io import read_jsonl
from tbr.stages.reflect import GENERIC_REFLECTION, is_degenerate, shuffled_reflections


def test_shuffled_is_a_seeded_derangement() -> None:
    ids = [f"s{i}" for i in range(9)]
    refl = [f"r{i}" for i in range(9)]
    out = shuffled_reflections(ids, refl, seed=3)
    assert sorted(out) == sorted(refl)                       # every reflection used once
    assert all(o != r for o, r in zip(out, refl))            # nobody keeps their own
    assert out == shuffled_reflections(ids, refl, seed=3)    # deterministic
    assert out != shuffled_reflections(ids, refl, seed=4)


@pytest.mark.parametrize("text,why", [("", "empty"), ("too short", "empty"), ("word " * 80, "over-long"),
                                      ("a b c a b c a b c a b c a b c", "repetitive"),
                                      ("This query asks for help stopping a stuck program safely.", None)])
def test_is_degenerate(text: str, why: str | None) -> None:
    assert is_degenerate(text) == why


@pytest.mark.parametrize("source", ["builtin", "shuffled", "generic", "none"])
def test_reflect_command_per_source(source: str, tiny_model: Path, tiny_data: dict[str, Path], tmp_path: Path) -> None:
    sets = sum((["--set", o] for o in tiny_overrides(tiny_model, tiny_data, tmp_path)), [])
    assert main(["reflect", "--no-progress", *sets, "--source", source]) == 0
    rows = read_jsonl(next((tmp_path / "t" / "reflect").glob(f"*-{source}")) / "reflections.jsonl")
    safety = read_jsonl(tmp_path / "t" / "data" / "safety.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in safety]
    assert all(r["source"] == source for r in rows)
    given = {r["id"]: r["builtin_reflection"] for r in safety}
    if source == "builtin":
        assert all(r["reflection"] == given[r["id"]] for r in rows)
    elif source == "generic":
        assert all(r["reflection"] == GENERIC_REFLECTION for r in rows)
    elif source == "none":
        assert all(r["reflection"] is None for r in rows)
    assert (next((tmp_path / "t" / "reflect").glob(f"*-{source}")) / "quality.md").exists()
    assert not (tmp_path / "t" / "train").exists()
