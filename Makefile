# labkit: two commands on a fresh machine.
#   make demo   the main job on the generated Shapes set, then the instructor's course cycle
#               (installs bubblewrap, the grading sandbox, first where it can)
#   make test   the whole test suite (installs bubblewrap and chromium first where it can)
#   make bench  every benchmark, side by side, into benchmarks/RESULTS.md (about 30 minutes)
#   make ablations  the seeds' experiments, 3 seeds, into benchmarks/ABLATIONS.md (about 30 minutes)
# Both create .venv (pinned torch/torchvision, labkit in editable mode) when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.labkit-installed
JOBS   ?= 2
OUT    ?= runs/demo

.PHONY: demo test bench ablations venv clean system-packages

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	@scripts/system-packages.sh bubblewrap
	$(BIN)/labkit demo --out $(OUT)
	$(BIN)/labkit course demo --out $(OUT)/course --jobs 2

system-packages:
	@scripts/system-packages.sh

test: $(STAMP) system-packages
	$(BIN)/python -m pytest -n $(JOBS) --dist worksteal --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/results.py

ablations: $(STAMP)
	$(BIN)/python benchmarks/ablations.py

clean:
	rm -rf runs .pytest_cache
