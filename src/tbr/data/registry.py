"""The one registry of public sets a user can point tbr at (loaded at run time, never vendored).

Each entry says where the set lives on the Hugging Face hub, which local file layouts are
accepted, how its published columns map onto tbr fields, and its licence. The loading code is in
tbr.data.public; evaluation suites built on these sets are in tbr.suites.

`columns` maps a tbr-side field to the published column. Besides the schema fields (prompt,
response, category, id, label, type, focus) two helper fields appear: `input` (Alpaca's optional
second part of the prompt) and `note` (XSTest's annotator note).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# What the hh red-team loader puts as the response: those rows are attacks, not refusals.
DEFAULT_REFUSAL = ("I'm sorry, but I can't help with that. It could cause harm to people, "
                   "so I won't provide it.")


@dataclass(frozen=True)
class Hub:
    """One copy of a set on the Hugging Face hub: `datasets.load_dataset(id, config, split=...,
    data_dir=...)`."""
    id: str
    config: str | None = None
    split: str = "train"
    data_dir: str | None = None


@dataclass(frozen=True)
class PublicSet:
    name: str
    kind: str                       # general | safety | eval
    layout: str                     # row mapper in tbr.data.public: instruction | transcript | table | lines
    hub: tuple[Hub, ...]            # first is the default; empty: local file only
    formats: tuple[str, ...]        # accepted local file suffixes
    columns: Mapping[str, str]      # tbr field -> published column
    licence: str
    description: str
    label: str | None = None        # eval sets whose every prompt has one label
    type: str | None = None         # ... and one type (used when there is no type column)
    required: tuple[str, ...] = ("prompt",)
    extra: Mapping[str, str] = field(default_factory=dict)  # free-form notes (upstream URL, ...)

    @property
    def hub_ids(self) -> str:
        return ", ".join(h.id + (f" ({h.config})" if h.config else "") for h in self.hub) or "-"


def _cols(**kw: str) -> Mapping[str, str]:
    return MappingProxyType(dict(kw))


_TABLE = (".jsonl", ".json", ".csv", ".parquet")
_ORBENCH_HUB = "bench-llm/or-bench"
_ORBENCH_COLS = _cols(prompt="prompt", type="category")
_ORBENCH_LIC = "CC-BY-4.0"

PUBLIC: dict[str, PublicSet] = {s.name: s for s in (
    PublicSet(
        "alpaca", "general", "instruction",
        (Hub("tatsu-lab/alpaca"), Hub("yahma/alpaca-cleaned")), _TABLE,
        _cols(prompt="instruction", input="input", response="output"),
        "CC-BY-NC-4.0",
        "Stanford Alpaca instruction data (52k) or any instruction/input/output file; "
        "prompt = instruction + blank line + input when input is non-empty",
        required=("prompt", "response")),
    PublicSet(
        "safety-tuned-llamas", "safety", "instruction", (), (".json", ".jsonl"),
        _cols(prompt="instruction", input="input", response="output"),
        "CC-BY-NC-4.0",
        "Safety-Tuned LLaMAs safety set (Bianchi et al.): a JSON list of {instruction, input, output}, "
        "harmful instructions with refusals; local file only (github.com/vinid/safety-tuned-llamas)",
        required=("prompt", "response")),
    PublicSet(
        "hh-redteam", "safety", "transcript",
        (Hub("Anthropic/hh-rlhf", data_dir="red-team-attempts"),), (".jsonl", ".json", ".jsonl.gz", ".json.gz"),
        _cols(prompt="transcript", category="tags"),
        "MIT",
        "Anthropic hh-rlhf red-team attempts: the first Human turn of each transcript as prompt, "
        "a standard refusal as response (the set has no refusals), category from tags when present"),
    PublicSet(
        "xstest", "eval", "table",
        (Hub("Paul/XSTest"), Hub("walledai/XSTest", split="test")), (".csv", ".jsonl", ".json", ".parquet"),
        _cols(id="id", prompt="prompt", type="type", label="label", focus="focus", note="note"),
        "CC-BY-4.0",
        "XSTest (Röttger et al.): 250 safe prompts in 10 types and 200 unsafe contrasts; "
        "CSV columns id,prompt,type,label,focus,note",
        required=("prompt", "type", "label")),
    PublicSet(
        "orbench-hard", "eval", "table", (Hub(_ORBENCH_HUB, "or-bench-hard-1k"),), _TABLE,
        _ORBENCH_COLS, _ORBENCH_LIC,
        "OR-Bench hard-1k: seemingly toxic but safe prompts that many models refuse (label safe)",
        label="safe"),
    PublicSet(
        "orbench-toxic", "eval", "table", (Hub(_ORBENCH_HUB, "or-bench-toxic"),), _TABLE,
        _ORBENCH_COLS, _ORBENCH_LIC, "OR-Bench toxic: harmful prompts that should be refused (label unsafe)",
        label="unsafe"),
    PublicSet(
        "orbench-80k", "eval", "table", (Hub(_ORBENCH_HUB, "or-bench-80k"),), _TABLE,
        _ORBENCH_COLS, _ORBENCH_LIC, "OR-Bench 80k: seemingly toxic but safe prompts (label safe)",
        label="safe"),
    PublicSet(
        "maliciousinstruct", "eval", "lines", (Hub("walledai/MaliciousInstruct"),),
        (".txt", ".csv", ".jsonl", ".json", ".parquet"),
        _cols(prompt="prompt"), "see upstream (github.com/Princeton-SysML/Jailbreak_LLM)",
        "MaliciousInstruct (Huang et al.): 100 harmful instructions; a text file with one per line, "
        "or a table with a prompt column (label unsafe)",
        label="unsafe", type="malicious"),
)}
