"""tbr.decode_attention: the decode-step attention that reads shared key/value heads in place.
Exact against transformers' sdpa on random tensors, and greedy generation through it gives the
same tokens as the model's own sdpa (float32, tiny GQA model)."""
from __future__ import annotations

import pytest

from tbr import decode_attention as D
from tbr import generation as E

pytestmark = pytest.mark.timeout(120)


class _Module:  # what sdpa_attention_forward reads from the attention module
    is_causal = True
    num_key_value_groups = 3
    training = False


def _tensors(kv_len=7, batch=2, heads=6, kv_heads=2, dim=8, seed=0):
    import torch
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, 1, dim, generator=g)
    k = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    v = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    # left padding: row 1 has its first three positions masked out
    mask = torch.ones(batch, 1, 1, kv_len, dtype=torch.bool)
    mask[1, ..., :3] = False
    return q, k, v, mask


def test_decode_attention_equals_sdpa_with_padding_and_gqa():
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    q, k, v, mask = _tensors()
    ours, _ = D.decode_attention(_Module(), q, k, v, mask, scaling=0.3)
    ref, _ = sdpa_attention_forward(_Module(), q, k, v, mask, scaling=0.3)
    assert ours.shape == ref.shape == (2, 1, 6, 8)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    # a float (additive) mask gives the same answer as the boolean one
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(D.decode_attention(_Module(), q, k, v, additive, scaling=0.3)[0], ref,
                               rtol=1e-5, atol=1e-6)
    # the masked positions really are ignored: changing their keys and values changes nothing in row 1
    k2, v2 = k.clone(), v.clone()
    k2[1, :, :3] += 5.0
    v2[1, :, :3] -= 5.0
    torch.testing.assert_close(D.decode_attention(_Module(), q, k2, v2, mask, scaling=0.3)[0][1], ours[1])


def test_prefill_goes_to_sdpa_unchanged():
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 6, 4, 8, generator=g)
    k = torch.randn(1, 2, 4, 8, generator=g)
    v = torch.randn(1, 2, 4, 8, generator=g)
    ours, _ = D.decode_attention(_Module(), q, k, v, None)
    ref, _ = sdpa_attention_forward(_Module(), q, k, v, None)
    assert torch.equal(ours, ref)


def test_switched_for_the_block_then_restored(tiny_model):
    from tbr.models import load_model
    model, _ = load_model(str(tiny_model), dtype="float32", device="cpu")
    assert model.config._attn_implementation == "sdpa"
    with D.decode_attention_for(model) as switched:
        assert switched and model.config._attn_implementation == D.NAME
    assert model.config._attn_implementation == "sdpa"
    with D.decode_attention_for(model, enabled=False) as switched:
        assert not switched and model.config._attn_implementation == "sdpa"


def test_generation_tokens_identical_to_sdpa(tiny_model, tmp_path, monkeypatch):
    """The fast path's float32 greedy tokens equal the model's own sdpa path, on prompts of
    different lengths in one left-padded batch (the tiny model has 4 query heads on 2 kv heads)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tbr.models import load_model
    m = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    m.config.tie_word_embeddings = False  # untied random head: varied tokens, not one repeated
    m.lm_head.weight = torch.nn.Parameter(torch.randn(m.lm_head.weight.shape,
                                                      generator=torch.Generator().manual_seed(3)))
    m.save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "m")
    model, tok = load_model(str(tmp_path / "m"), dtype="float32", device="cpu")
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    prompts = ["hi", "write a poem about the sea", "what is two plus two, explain step by step", "ok"]
    texts = [E.render_chat(tok, [{"role": "user", "content": p}]) for p in prompts]
    from transformers import AttentionInterface
    D.register()
    query_lengths: list[int] = []

    def spy(module, query, *args, **kwargs):
        query_lengths.append(query.shape[2])
        return D.decode_attention(module, query, *args, **kwargs)
    monkeypatch.setitem(AttentionInterface._global_mapping, D.NAME, spy)
    fast_ids: list[list[int]] = []
    slow_ids: list[list[int]] = []
    E.hf_generate_texts(model, tok, texts, max_new_tokens=16, progress=False, token_ids=fast_ids)
    assert query_lengths.count(1) >= 10 * model.config.num_hidden_layers  # decode steps ran through it
    n = len(query_lengths)
    E.hf_generate_texts(model, tok, texts, max_new_tokens=16, progress=False, token_ids=slow_ids,
                        grouped_decode=False)
    assert len(query_lengths) == n  # and the other run did not
    assert fast_ids == slow_ids
    assert len({tuple(r) for r in fast_ids}) > 1 and all(len(r) > 1 for r in fast_ids)
