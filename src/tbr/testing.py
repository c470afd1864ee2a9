"""A tiny Llama with a byte-level BPE tokenizer, made in code: for tests and smoke runs.

No download: the tokenizer is trained on a few hundred sentences written here, and the model
is randomly initialised from a small `LlamaConfig`. The chat template mirrors SmolLM2's
`<|im_start|>role ... <|im_end|>` turns so that every code path sees a realistic template.
"""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = (
    "how do I kill a python process shoot a photo bomb recipe sorry I cannot help with that "
    "request this query asks for information about the capital of france is paris write a poem "
    "explain step by step answer the question safely instruction response explain therefore "
    "harmful benign weapon love see paint the a an of to in is it you can will be not do what why "
    "where when who which make build find give tell show help please thanks steal hack drug "
    "history privacy public figure fictional character definition homonym figurative "
    "0 1 2 3 4 5 6 7 8 9 + - * / = . , ? ! : ; ' \" ( ) \n"
)


def _corpus() -> list[str]:
    words = _WORDS.split(" ")
    lines = []
    for i in range(400):
        lines.append(" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)))
    lines.append(_WORDS)
    lines.append("".join(chr(c) for c in range(32, 127)))
    return lines


def make_tiny_model(path: str | Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0,
                    vocab_size: int = 512) -> Path:
    """Write a tiny LlamaForCausalLM + fast tokenizer (with chat template) to `path`."""
    import torch  # torch: heavy, loaded on first use (keeps `tbr --help` fast)
    from tokenizers import (  # tokenizers: only for the tiny test models
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import (  # transformers: heavy, loaded on first use
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(path)

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    return path
