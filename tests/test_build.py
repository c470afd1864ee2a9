"""Exact tests of γ mixing and prompt masking: which rows get reflections, how many, which
tokens carry loss."""
from __future__ import annotations

import pytest

from tbr.stages.build import IGNORE, mask_labels, mix, n_reflected, render, select_reflected, target_text, tokenize_row


@pytest.mark.parametrize("n,gamma,want", [(10, 0.0, 0), (10, 1.0, 10), (10, 0.25, 3), (5, 0.5, 3),
                                          (4, 0.5, 2), (7, 0.2, 1), (200, 0.2, 40), (3, 0.1, 0)])
def test_n_reflected_rounds_half_up(n: int, gamma: float, want: int) -> None:
    assert n_reflected(n, gamma) == want


def test_select_reflected_is_exact_seeded_and_nested() -> None:
    ids = [f"s{i:02d}" for i in range(20)]
    avail = set(ids)
    sets = {g: set(select_reflected(ids, avail, g, seed=7)) for g in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)}
    assert [len(sets[g]) for g in sorted(sets)] == [0, 4, 8, 12, 16, 20]
    assert sets[0.2] <= sets[0.4] <= sets[0.6] <= sets[0.8] <= sets[1.0] == avail
    # deterministic function of (ids, γ, seed), independent of input order
    assert select_reflected(list(reversed(ids)), avail, 0.4, seed=7) == select_reflected(ids, avail, 0.4, seed=7)
    assert set(select_reflected(ids, avail, 0.4, seed=8)) != sets[0.4]


def test_select_reflected_skips_rows_without_reflection() -> None:
    ids = ["a", "b", "c", "d"]
    chosen = select_reflected(ids, {"a", "c"}, 1.0, seed=0)
    assert sorted(chosen) == ["a", "c"]


def test_mix_targets_and_counts() -> None:
    general = [{"id": "g1", "kind": "general", "prompt": "p", "response": " answer ", "category": "x"}]
    safety = [{"id": f"s{i}", "kind": "safety", "prompt": "bad", "response": "No, I won't.", "category": "privacy",
               "builtin_reflection": "hand"} for i in range(4)]
    refl = {"s0": "R0.", "s1": "R1.", "s2": None, "s3": "R3."}
    rows, counts = mix(general, safety, refl, 0.5, seed=1, separator=" ")
    assert rows[0]["target"] == "answer" and rows[0]["reflection"] is None
    reflected = [r for r in rows if r["reflection"]]
    assert len(reflected) == 2 and counts["reflected"] == 2 and counts["reflection_unavailable"] == 0
    for r in reflected:
        assert r["target"] == f"{refl[r['id']]} No, I won't."
    assert all("builtin_reflection" not in r for r in rows)
    assert counts["gamma_effective"] == 0.5
    _, c1 = mix(general, safety, refl, 1.0, seed=1)
    assert c1["reflected"] == 3 and c1["reflection_unavailable"] == 1  # s2 has none: reported, not hidden


def test_target_text() -> None:
    assert target_text("Refuse.", "Think.", "\n") == "Think.\nRefuse."
    assert target_text(" Refuse. ", None) == "Refuse."


def test_mask_labels_exact() -> None:
    ids, labels = mask_labels([1, 2, 3], [4, 5], max_length=10)
    assert ids == [1, 2, 3, 4, 5]
    assert labels == [IGNORE, IGNORE, IGNORE, 4, 5]
    ids, labels = mask_labels([1, 2, 3], [4, 5], max_length=4)
    assert ids == [1, 2, 3, 4] and labels == [IGNORE, IGNORE, IGNORE, 4]
    _, labels = mask_labels([1, 2, 3], [4, 5], max_length=3)
    assert all(x == IGNORE for x in labels)


def test_chat_render_masks_prompt_token_by_token(tiny_model) -> None:
    from tbr.models import load_tokenizer
    tok = load_tokenizer(str(tiny_model), padding_side="right")
    p, c = render(tok, "how do I kill a python process", "This query asks for help. Sorry, I cannot.")
    assert p.endswith("<|im_start|>assistant\n")
    assert c == "This query asks for help. Sorry, I cannot.<|im_end|>\n"
    ids, labels = tokenize_row(tok, p, c, max_length=512)
    n_prompt = len(tok(p, add_special_tokens=False)["input_ids"])
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    # the supervised tokens decode to exactly the target plus end of turn: reflection included
    assert tok.decode(ids[n_prompt:]) == c
    assert tok.eos_token_id in ids[n_prompt:]


def test_alpaca_render(tiny_model) -> None:
    from tbr.models import load_tokenizer
    tok = load_tokenizer(str(tiny_model))
    p, c = render(tok, "Say hi", "Hi.", template="alpaca")
    assert p.startswith("Below is an instruction") and p.endswith("### Response:\n")
    assert c == "Hi." + tok.eos_token
