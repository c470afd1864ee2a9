"""Every config key: one dataclass per stage, each field with its type, default, help text
and allowed range declared side by side (`_f`). tbr.config loads and checks them."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _copies(d: list[Any] | dict[str, Any]) -> Callable[[], Any]:
    """A factory of fresh copies: a mutable default is never shared between configs."""
    return lambda: type(d)(d)


def _f(default: Any, help: str, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
       lt: float | None = None, choices: tuple[str, ...] | None = None, not_zero: bool = False) -> Any:
    """A config field with its help text and its allowed range, declared once, side by side.

    ge/gt/le/lt bound a number (each item of a list of numbers); choices lists the allowed
    strings (each item of a list of strings); not_zero refuses 0 (e.g. max_steps: -1 or > 0).
    `validate` checks every field against these before any work starts."""
    meta = {"help": help, "range": {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt))
                                    if v is not None}, "choices": choices, "not_zero": not_zero}
    if isinstance(default, (list, dict)):
        return field(default_factory=_copies(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    name: str = _f("smollm2-135m", "registry name (see `tbr models`), Hugging Face id, or local folder")
    dtype: str = _f("auto", "auto | bfloat16 | float32 | float16 (auto: bf16 where the hardware supports it)",
                    choices=("auto", "bfloat16", "float32", "float16", "bf16", "fp32", "fp16"))
    device: str = _f("auto", "auto | cpu | cuda", choices=("auto", "cpu", "cuda"))


@dataclass
class SourceConfig:
    source: str = _f("builtin", "builtin | a registered public set (see `tbr data list`) | path to a file")
    limit: int | None = _f(None, "keep at most this many rows (a seeded, stratified sample)", ge=1)
    columns: dict[str, str] = _f({}, "column map for files: tbr field -> column in the file")


@dataclass
class DataConfig:
    general: SourceConfig = field(default_factory=SourceConfig, metadata={"help": "general instructions"})
    safety: SourceConfig = field(default_factory=SourceConfig, metadata={"help": "harmful requests with refusals"})
    eval: list[str] = _f(["builtin"], "evaluation suites (see `tbr eval --list`)")
    eval_limit: int | None = _f(None, "per-suite cap on evaluation prompts (stratified by label and type); "
                                "applies to the suites of data.eval as the config names them: a suite given "
                                "with `tbr eval --suite` is evaluated whole unless `--limit` is set", ge=1)


@dataclass
class ReflectConfig:
    source: list[str] = _f(["internal"], "internal | external | builtin | shuffled | generic | none; a list is a grid axis")
    model: str | None = _f(None, "model for internal reflections (default: the model being trained)")
    max_new_tokens: int = _f(48, "length cap of one reflection, in tokens", ge=1)
    batch_size: int = _f(16, "prompts per generation batch", ge=1)
    api_base: str | None = _f(None, "external: OpenAI-compatible base URL (or env TBR_API_BASE)")
    api_model: str | None = _f(None, "external: model name at the endpoint")
    api_key_env: str = _f("OPENAI_API_KEY", "external: name of the environment variable holding the key")
    concurrency: int = _f(4, "external: requests in flight", ge=1)
    timeout: float = _f(60.0, "external: seconds per request", gt=0)
    max_retries: int = _f(5, "external: retries on 429, 5xx, timeouts, malformed replies", ge=0)


@dataclass
class BuildConfig:
    gamma: list[float] = _f([0.0, 1.0], "safety reflection ratio(s) γ in [0, 1]; a list is a grid axis; "
                            "[] trains nothing (evaluation only)", ge=0, le=1)
    template: str = _f("chat", "chat (the model's chat template) | alpaca (the paper's)", choices=("chat", "alpaca"))
    benign: list[float] = _f([0.0], "share of general rows replaced by benign look-alike rows whose reflection "
                             "concludes the request is fine, then answers (beyond the paper: its reflections only "
                             "ever precede refusals); TBR cells only; a list is a grid axis", ge=0, le=1)
    benign_source: str = _f("builtin", "benign look-alike rows: builtin, or a JSONL with id, prompt, reflection, "
                                       "response")
    separator: str = _f(" ", "text between reflection and refusal")
    system_prompt: str | None = _f(None, "system prompt used when rendering with the chat template")


@dataclass
class LoraConfig:
    enabled: bool = _f(True, "LoRA adapters; false = full fine-tuning")
    r: int = _f(16, "rank", ge=1)
    alpha: int = _f(32, "scaling alpha", gt=0)
    dropout: float = _f(0.05, "dropout on the adapter input", ge=0, lt=1)
    target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                   "module names that get adapters")


@dataclass
class DpoConfig:
    beta: float = _f(0.1, "DPO temperature: how far the policy may move from its reference", gt=0)
    learning_rate: float = _f(1.0e-4, "peak learning rate of the DPO phase", gt=0, lt=1)
    epochs: float = _f(1.0, "passes over the preference pairs", gt=0)
    max_steps: int = _f(-1, "stop the DPO phase after this many steps (-1: use epochs)", ge=-1, not_zero=True)
    batch_size: int = _f(4, "pairs per device per step (each pair is two sequences)", ge=1)
    loss_type: str = _f("sigmoid", "TRL's DPO loss: sigmoid (the DPO paper's) | ipo | hinge | robust",
                        choices=("sigmoid", "ipo", "hinge", "robust"))
    rejected_tokens: int = _f(96, "length cap of the untouched model's answers used as rejected completions",
                              ge=1)


@dataclass
class TrainConfig:
    method: str = _f("sft", "sft | dpo | sft+dpo: supervised fine-tuning, DPO on preference pairs (chosen = "
                            "the cell's target, rejected = the untouched model's compliant answer or a refusal "
                            "of a benign look-alike), or SFT then DPO from the SFT model",
                     choices=("sft", "dpo", "sft+dpo"))
    dpo: DpoConfig = field(default_factory=DpoConfig, metadata={"help": "DPO settings (train.method dpo or sft+dpo)"})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA settings"})
    epochs: float = _f(1.0, "passes over the training set", gt=0)
    max_steps: int = _f(-1, "stop after this many optimizer steps (-1: use epochs)", ge=-1, not_zero=True)
    learning_rate: float = _f(3e-4, "peak learning rate", gt=0, lt=1)
    batch_size: int = _f(8, "sequences per device per step", ge=1)
    grad_accum: int = _f(1, "gradient accumulation steps", ge=1)
    max_length: int = _f(256, "token cutoff per example", ge=8)
    warmup_ratio: float = _f(0.03, "share of steps spent warming up", ge=0, lt=1)
    gradient_checkpointing: bool = _f(False, "trade compute for memory (worth it only for big models)")
    group_by_length: bool = _f(True, "batch similar lengths together to waste less padding")
    padding_free: bool = _f(False, "concatenate each batch into one row, no padding (SDPA, no cross-sample "
                                   "attention; same loss as padded); off: no faster on CPU once "
                                   "group_by_length has cut the padding")
    completion_head: bool = _f(True, "SFT: project only the trained (completion) positions through the LM head, "
                                     "not the masked prompt ones (same loss; measured 1.38x tokens/s on CPU, "
                                     "benchmarks/train_throughput.py); false: TRL's own loss")
    save_steps: int = _f(50, "checkpoint every N steps (resume after a kill)", ge=1)
    report_to: list[str] = _f([], "experiment trackers that get the Trainer's logs: tensorboard | wandb | trackio "
                              "| mlflow (default: none; logs go to train_log.jsonl and the progress bar)",
                              choices=("none", "tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "all"))
    merge: bool = _f(False, "also save the merged full model (for vLLM / lm-eval)")


@dataclass
class GenerateConfig:
    backend: str = _f("hf", "hf | vllm | openai", choices=("hf", "vllm", "openai"))
    modes: list[str] = _f(["plain"], "prompting modes: plain | direct | cot", choices=("plain", "direct", "cot"))
    max_new_tokens: int = _f(64, "response length cap; with reflection_tokens > 0, the cap of the answer, "
                                 "counted from the end of any reflection", ge=1)
    reflection_tokens: int = _f(0, "extra tokens a response may spend on a safety reflection before its answer "
                                   "(hf backend), so a reflecting model's answer gets the same budget as a plain "
                                   "one; 0 = one cap for the whole response", ge=0)
    batch_size: int = _f(64, "prompts per batch (hf backend; 64 was fastest on a 2-core CPU)", ge=1)
    api_base: str | None = _f(None, "openai backend: base URL")
    api_model: str | None = _f(None, "openai backend: model name")
    api_key_env: str = _f("OPENAI_API_KEY", "openai backend: env var with the key")
    untouched: bool = _f(True, "also evaluate the model before fine-tuning")


@dataclass
class JudgeConfig:
    judges: list[str] = _f(["tbr", "keywords", "xstest-prefix"], "judges to run (see `tbr judge --list`)")
    primary: str = _f("tbr", "judge whose labels give the headline compliance rates")
    model: str | None = _f(None, "llm/guard judges: local model (registry name, folder or hub id)")
    api_base: str | None = _f(None, "llm/guard judges: OpenAI-compatible base URL (instead of a local model)")
    api_model: str | None = _f(None, "llm/guard judges: model name at the endpoint")
    api_key_env: str = _f("OPENAI_API_KEY", "llm/guard judges: env var holding the API key")


@dataclass
class EvalConfig:
    bootstrap: int = _f(1000, "bootstrap resamples for paired differences", ge=0)
    attacks: list[str] = _f([], "attacks wrapped around every evaluation prompt (`tbr eval --list-attacks`; "
                            "all = every one); the unwrapped prompts stay in as attack none")
    attack_limit: int | None = _f(None, "wrap only this many evaluation prompts (a stratified sample by suite, "
                                  "label and type, the same for every attack; default: all): attacks multiply "
                                  "generation", ge=1)
    general_tasks: list[str] = _f([], "lm-eval tasks for general ability (e.g. mmlu, gsm8k, arc_easy)")
    general_limit: int | None = _f(None, "lm-eval: examples per task (quick runs)", ge=1)


@dataclass
class AttributeConfig:
    enabled: bool = _f(False, "run the attribution stage")
    limit: int = _f(50, "prompts with a focus word to attribute", ge=1)
    neutral_words: list[str] = _f(["love", "see", "paint"], "replacements for the focus word (averaged)")
    target: str = _f("Sorry, but as an AI assistant, I couldn't answer your query.",
                     "refusal target text, or 'greedy' for the model's own first 16 response tokens")
    ig_steps: int = _f(64, "integrated-gradients steps (the completeness gap is reported; 128 for tighter; "
                       "0: no integrated gradients)", ge=0)
    ig_limit: int = _f(10, "integrated gradients on the first N prompts only (it costs ig_steps passes each)", ge=0)
    heatmaps: int = _f(2, "heatmaps drawn (first N prompts, all models side by side)", ge=0)


@dataclass
class ExperimentConfig:
    name: str = _f("demo", "run name: the run directory is <runs_dir>/<name>")
    runs_dir: str = _f("runs", "parent folder of run directories")
    seed: list[int] = _f([0], "random seed(s); a list is a grid axis", ge=0)
    threads: int | None = _f(None, "torch CPU threads (default: torch's choice)", ge=1)
    deterministic: bool = _f(False, "same metrics on every CPU family: fp32, one thread, deterministic torch "
                             "algorithms, and MKL/oneDNN pinned to one instruction-set path (slower)")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "base model"})
    models: list[Any] = _f([], "grid axis over base models (overrides model.name when non-empty); each entry "
                           "a name or folder, or {path: ..., label: ...} to name it in the report")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "data sources"})
    reflect: ReflectConfig = field(default_factory=ReflectConfig, metadata={"help": "reflection stage"})
    build: BuildConfig = field(default_factory=BuildConfig, metadata={"help": "mixing and rendering"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "fine-tuning"})
    generate: GenerateConfig = field(default_factory=GenerateConfig, metadata={"help": "generation"})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={"help": "judging"})
    evaluate: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "metrics"})
    attribute: AttributeConfig = field(default_factory=AttributeConfig, metadata={"help": "attribution"})

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name
