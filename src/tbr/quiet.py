"""One clean line of progress per stage: library chatter tbr triggers is filtered here.

Known FutureWarnings and DeprecationWarnings from transformers, TRL, PEFT and torch that tbr's
own calls trigger (and that a user cannot act on) are hidden, and so are transformers' info
logs (weight-loading reports). `--verbose` keeps everything."""
from __future__ import annotations

import os
import warnings

# (category, module regex): warnings raised inside these libraries on tbr's behalf
_LIBRARY_WARNINGS = (
    (FutureWarning, r"(transformers|trl|peft|accelerate|torch|datasets)(\.|$)"),
    (DeprecationWarning, r"(transformers|trl|peft|accelerate|torch|datasets)(\.|$)"),
    (UserWarning, r"(torch\.utils\.data|torch\.amp|transformers\.generation|peft\.tuners)(\.|$)"),
)

VERBOSE = False


def quiet_libraries(verbose: bool = False) -> None:
    global VERBOSE
    VERBOSE = verbose
    if verbose:
        os.environ.pop("TRANSFORMERS_VERBOSITY", None)
        return
    for cat, module in _LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", category=cat, module=module)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # the libraries' own bars (loading weights, truncating the dataset, writing shards) would
    # interleave with tbr's one bar per stage
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
