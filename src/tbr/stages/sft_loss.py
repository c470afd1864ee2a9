"""The SFT loss on completion tokens only: the LM head projects just the positions whose
next-token label is trained, never the (masked) prompt positions.

Why: with a 49k vocabulary the LM head and its softmax are a large share of a small model's
step, and in tbr's rows most tokens are prompt (system prompt, chat markup, the request), whose
labels are -100 anyway. TRL's SFTTrainer scores every position through its fused head on
devices without Triton, CPUs included, and adds entropy and token-accuracy metrics on top.
Measured with benchmarks/train_throughput.py on a 2-core AMD EPYC (bf16, batch 8, the
embedded model): 238 -> 328 tokens/s, the same loss. `train.completion_head: false` turns it
off (TRL's own compute_loss).

Same value as the model's own loss: the mean of -log p(label) over trained positions, or the
sum over `num_items_in_batch` when the Trainer accumulates gradients (tested against the
model's loss on a tiny model).
"""
from __future__ import annotations

from typing import Any

IGNORE = -100
_BACKBONE_INPUTS = ("input_ids", "attention_mask", "position_ids")


def completion_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """Causal-LM cross-entropy over positions whose shifted label is not IGNORE.

    `model` is a causal LM, or a PEFT model wrapping one (LoRA layers live inside the base
    model's modules, so calling its backbone and head applies them)."""
    import torch.nn.functional as F  # torch: heavy, loaded on first use

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(base, base.base_model_prefix)
    kw = {k: inputs[k] for k in _BACKBONE_INPUTS if inputs.get(k) is not None}
    hidden = backbone(**kw, use_cache=False).last_hidden_state[:, :-1]
    labels = inputs["labels"][:, 1:].to(hidden.device)
    mask = labels != IGNORE
    logits = base.get_output_embeddings()(hidden[mask]).float()
    total = F.cross_entropy(logits, labels[mask], reduction="sum")
    n = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1)
    return total / n


def completion_trainer_class() -> type:
    """SFTTrainer whose training loss is completion_loss (single process: a DDP-wrapped model
    must run its own forward for the gradient all-reduce, so it keeps TRL's loss)."""
    from trl import SFTTrainer  # trl: heavy, loaded on first use

    class CompletionHeadSFTTrainer(SFTTrainer):
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            if return_outputs or type(model).__name__ == "DistributedDataParallel":
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            return completion_loss(model, inputs, num_items_in_batch)

    return CompletionHeadSFTTrainer
