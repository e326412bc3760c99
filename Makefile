# Front door for every task. `make test` and `make sweep` work on a fresh clone:
# they create .venv and install the package first when needed.
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
# The torch pair that is served from local disk on our build machines; override on yours,
# e.g. `make install TORCH_SPEC="torch torchvision"`.
TORCH_SPEC  ?= torch==2.14.1 torchvision==0.29.1
STAMP       := $(VENV)/.installed
SWEEP       ?= quick
MACHINE_KIND ?= cpu-2core
export WANDB_MODE ?= disabled
export WANDB_SILENT ?= true
.DEFAULT_GOAL := help

.PHONY: help install status test test-slow test-all sweep report reproduce figures bench bench-check bench-baseline clean

help:  ## this list (the default target)
	@echo "harness: decoupled activation functions (forward f, backward g), benchmarked. Targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):.*## (.*)/  make \1\t\2/' | expand -t 24
	@echo "Variables: SWEEP=$(SWEEP) (a conf/experiment name), TORCH_SPEC='$(TORCH_SPEC)'"

install: $(STAMP)  ## create .venv and install the package with its dependencies (once)

# Re-run only when the dependency list changes: quick and idempotent otherwise.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: install  ## fast tests (default selection: not slow)
	$(BIN)/python -m pytest -q

test-slow: install  ## end-to-end tests marked slow
	$(BIN)/python -m pytest -q -m slow

test-all: install  ## every test, slow ones included
	$(BIN)/python -m pytest -q -m ''

sweep: install  ## run the named experiment sweep (SWEEP=quick by default) and build its report
	$(BIN)/harness-run -m +experiment=$(SWEEP)
	$(BIN)/harness-report multirun/$(SWEEP)

status: install  ## counts by status and the failures of the sweep SWEEP (harness-store)
	$(BIN)/harness-store multirun/$(SWEEP) --sweep

report: install  ## rebuild the report of SWEEP from its records (tables, figures, HTML); REPORT_ARGS="--baseline backward=exact ..."
	$(BIN)/harness-report multirun/$(SWEEP) $(REPORT_ARGS)

# Published claims on trial (results/README.md): one conf/experiment/<claim>.yaml and results/<claim>/ each;
# speed_memory_families is a measurement, not a sweep (scripts/speed_memory_families.py writes its folder).
CLAIMS      ?= mnist1d_baselines troiano_digits troiano_single_unit troiano_jamming troiano_step_sign troiano_bnn \
               troiano_mnist1d sugar_deep_plain vanishing_deep snr_jamming fewbit_mlp fewbit_transformer speed_memory_families
CLAIM       ?=

reproduce: install  ## re-run every claim through the cache (CLAIM=<name> for one), consolidate to results/<claim>/runs.parquet, rebuild its report
	@set -e; for c in $(if $(CLAIM),$(CLAIM),$(CLAIMS)); do \
	  echo "== $$c"; mkdir -p results/$$c; \
	  if [ -f scripts/$$c.py ]; then $(BIN)/python scripts/$$c.py; continue; fi; \
	  $(BIN)/harness-run -m +experiment=$$c hydra.sweep.dir=multirun/$$c; \
	  $(BIN)/harness-store multirun/$$c --parquet results/$$c/runs.parquet; \
	done; $(BIN)/python scripts/figures.py

figures: install  ## regenerate every committed table and figure under results/ from the committed runs.parquet
	$(BIN)/python scripts/figures.py

bench: install  ## full micro benchmark (both shapes, 1 and all threads) and the macro training benchmark
	$(BIN)/harness-bench --macro

bench-check: install  ## CI speed gate: quick micro and macro runs, ratios compared with the committed baseline
	$(BIN)/harness-bench --quick --macro --compare results/baselines/$(MACHINE_KIND).json

bench-baseline: install  ## refresh the baseline of this machine kind (commit the file)
	$(BIN)/harness-bench --quick --macro --runs 5 --json results/baselines/$(MACHINE_KIND).json

clean:  ## remove generated outputs (outputs, multirun, reports)
	rm -rf outputs multirun reports .pytest_cache
