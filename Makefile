# labkit: two commands on a fresh machine.
#   make demo   the main job on the generated Shapes set, then the instructor's course cycle
#               (installs bubblewrap, the grading sandbox, first where it can)
#   make test   the whole test suite (installs bubblewrap and chromium first where it can);
#               its durations go to runs/test-durations.json (benchmarks/test_durations.py
#               turns them into benchmarks/test_durations.md)
#   make lint   ruff format --check and ruff check (make test runs it first)
#   make test-fast  the unit tests only (no notebook, grading, install or browser runs), for
#               the edit-test loop; make test stays the one that says a change is good
#   make bench  every benchmark, side by side, into benchmarks/RESULTS.md (about 30 minutes)
#   make ablations  the seeds' experiments and the labs' lessons, 3 seeds, into benchmarks/ABLATIONS.md
#               and labkit/lessons.json (about 55 minutes)
# Both create .venv (pinned torch/torchvision, labkit in editable mode) when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.labkit-installed
JOBS   ?= 2
OUT    ?= runs/demo

.PHONY: demo test test-fast lint bench ablations venv clean system-packages

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

# loadgroup keeps the tests of a module fixture on one worker (tests/conftest.py groups them);
# without reordering, work goes out in the order tests/conftest.py sorts it: longest first.
PYTEST := $(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --no-loadscope-reorder

# "--durations-json=FILE", not "--durations-json FILE": pytest reads an existing FILE given
# apart as a test path, and then never loads tests/conftest.py, which defines the option.
test: $(STAMP) system-packages lint
	$(PYTEST) --durations=15 --durations-json=runs/test-durations.json

# ruff's formatter and linter (settings in pyproject.toml); `ruff format .` fixes the first
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test-fast: $(STAMP)
	$(PYTEST) -m "not slow" --durations=5

bench: $(STAMP)
	$(BIN)/python benchmarks/results.py

ablations: $(STAMP)
	$(BIN)/python benchmarks/ablations.py

clean:
	rm -rf runs .pytest_cache
