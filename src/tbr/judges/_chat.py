"""How model-based judges (llm, guard) reach a model: an OpenAI-compatible endpoint or a local one.

Remote: any object with `complete_many(conversations, **params) -> list[str | Exception]`
(tbr.remote.ChatClient, or a fake in tests). Retries and the cache live in that client, so a
rerun of a judge pays nothing twice. Local: a callable
`generate_fn(conversations, max_new_tokens) -> list[str]`, or a model name that we load here.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tbr.errors import TbrError
from tbr.generation import hf_generate_texts, render_chat
from tbr.models import load_model
from tbr.remote import ChatClient

Messages = list[dict[str, str]]
GenerateFn = Callable[[list[Messages], int], list[str]]


class Transport:
    def __init__(self, *, judge: str, client: Any = None, generate_fn: GenerateFn | None = None,
                 api_base: str | None = None, api_model: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", model: str | None = None,
                 cache_dir: str | None = None, concurrency: int = 4, max_new_tokens: int = 32,
                 raw_llama3: bool = False, batch_size: int = 8, device: str = "auto",
                 dtype: str = "auto") -> None:
        remote = client is not None or api_base is not None
        local = generate_fn is not None or model is not None
        if not remote and not local:
            raise TbrError(f"judge {judge!r} needs a model: set api_base and api_model (an OpenAI-"
                           f"compatible endpoint) or model (a local model)")
        if remote and local:
            raise TbrError(f"judge {judge!r}: set either api_base (remote) or model (local), not both")
        self.max_new_tokens = max_new_tokens
        self.client = client
        self.generate_fn = generate_fn
        if client is None and api_base is not None:
            if not api_model:
                raise TbrError(f"judge {judge!r}: api_base is set but api_model is not")
            self.client = ChatClient(api_base, api_model, api_key_env=api_key_env,
                                     concurrency=concurrency, cache_dir=cache_dir)
        if client is None and api_base is None and generate_fn is None and model is not None:
            self.generate_fn = LocalGenerator(model, raw_llama3=raw_llama3, batch_size=batch_size,
                                              device=device, dtype=dtype)

    @property
    def remote(self) -> bool:
        return self.client is not None

    def complete(self, conversations: Sequence[Messages]) -> list[str | Exception]:
        convs = [list(c) for c in conversations]
        if not convs:
            return []
        if self.client is not None:
            # temperature 0: a judge must give the same verdict for the same row on every run
            out = list(self.client.complete_many(convs, temperature=0.0, max_tokens=self.max_new_tokens))
        else:
            assert self.generate_fn is not None
            out = list(self.generate_fn(convs, self.max_new_tokens))
        if len(out) != len(convs):
            raise TbrError(f"judge model returned {len(out)} replies for {len(convs)} requests")
        return out


class LocalGenerator:
    """Greedy batched generation with a local model (tbr.generation), loaded on first use.

    raw_llama3: the single user message already holds the whole prompt (a guard prompt we
    formatted ourselves); wrap it in bare Llama-3 turn headers instead of the model's chat
    template, which for a Llama Guard model would wrap our prompt in a second task prompt.
    """

    def __init__(self, model: str, *, raw_llama3: bool = False, batch_size: int = 8,
                 device: str = "auto", dtype: str = "auto") -> None:
        self.name, self.raw_llama3, self.batch_size = model, raw_llama3, batch_size
        self.device, self.dtype = device, dtype
        self._loaded: tuple[Any, Any] | None = None

    def _text(self, tok: Any, conv: Messages) -> str:
        if self.raw_llama3 and "<|start_header_id|>" in tok.get_vocab():
            return ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + conv[-1]["content"]
                    + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        return render_chat(tok, conv)

    def __call__(self, conversations: list[Messages], max_new_tokens: int) -> list[str]:
        if self._loaded is None:
            self._loaded = load_model(self.name, dtype=self.dtype, device=self.device)
        model, tok = self._loaded
        texts = [self._text(tok, c) for c in conversations]
        return hf_generate_texts(model, tok, texts, max_new_tokens=max_new_tokens,
                                 batch_size=self.batch_size, desc="judge")
