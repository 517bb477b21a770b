# freeinit_lab — one command to set up and run each job. Needs python3 (>= 3.10) with venv and pip.
# Everything installs into .venv with the exact versions of constraints.txt (pyproject.toml holds ranges);
# torch 2.13.0 goes in first, alone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo reproduce test test-fast bench lab clean browser

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install freeinit_lab with its dependencies

demo: $(STAMP)  ## the main job for now: print the band-SNR table of the default data
	$(PY) -m freeinit_lab.embedded.demo

reproduce: $(STAMP) browser  ## the main job: run every notebook headless into reports/ (HTML + summary of key numbers; PNG figures for the README need the Chromium); SEED=17 runs them at another seed into reports/seed17/
	$(PY) scripts/reproduce.py $(if $(SEED),--seed $(SEED))

test: $(STAMP) browser  ## the full suite (what CI runs): unit + slow tests, every notebook under nbval, the browser test (skips, saying why, without a Chromium)
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --durations=15

test-fast: $(STAMP)  ## the development tier: unit tests without the slow, notebook and browser ones
	$(PY) -m pytest tests -p no:nbval -m "not slow and not notebooks and not browser" -q

browser:  ## a Chromium for tests/browser: Debian's chromium via apt-get when root, else how to get one
	bash scripts/ensure_browser.sh

bench: $(STAMP)  ## benchmarks (not tests): ratios against diffusers measured in the same run, import time
	$(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_spectral.py
	$(PY) benchmarks/bench_freeinit.py
	$(PY) benchmarks/bench_probes.py
	$(PY) benchmarks/bench_default_model.py
	$(PY) benchmarks/bench_unet_elementwise.py
	$(PY) benchmarks/bench_unet_layout.py
	$(PY) benchmarks/bench_exact_score.py
	$(PY) benchmarks/bench_reference.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_widened.py --bf16

lab: $(STAMP)  ## open JupyterLab on notebooks/
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) .pytest_cache reports
