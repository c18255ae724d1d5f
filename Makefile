# lecture13: two commands for students (`make lab`, `make test`), a few more for instructors.
# Works from a fresh clone on a machine with python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB_STAMP := $(VENV)/.installed-lab
JOBS   ?= 2
NOTEBOOK ?= notebooks/00_generative_models.ipynb

.PHONY: lab install test unit browser nbval release check-release execute bench site clean help

help:
	@echo "make lab       start JupyterLab on the course (sets up $(VENV) first)"
	@echo "make test      the whole test suite: unit tests, solutions/ (nbval), notebooks/ (browser)"
	@echo "make unit      unit tests only"
	@echo "make browser   the browser tests only: every student notebook in JupyterLab in Chromium"
	@echo "make release   rebuild the student notebooks/ from solutions/"
	@echo "make execute   re-run every notebook in solutions/ and store its outputs"
	@echo "make bench     measure everything the course promises into benchmarks/results.md"
	@echo "make site      build the course as a static website into build/site/"
	@echo "make install   set up $(VENV) with everything the tests need (make test does it first)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# `make lab`: the package, JupyterLab and its kernel ([lab]), and the course's JupyterLab settings and
# server config (jupyter-config/: no news pop-up, idle kernels of closed notebooks shut down).
$(LAB_STAMP): pyproject.toml $(wildcard jupyter-config/*.json jupyter-config/*.py) | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[lab]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lecture13)"
	$(PY) jupyter-config/install.py
	touch $(LAB_STAMP)

# Everything else: [test] brings the test tools and every other extra (instructor, site).
$(STAMP): pyproject.toml $(LAB_STAMP)
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lab: $(LAB_STAMP)
	$(PY) -m jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,) $(NOTEBOOK)

# One BLAS thread per worker: JOBS workers on JOBS cores, no oversubscription (kernels inherit it).
# nbval runs solutions/. The student release (notebooks/) is run top to bottom by the browser test,
# which asserts more (no error output, one fall-back per exercise, every figure and widget shown); only
# where there is no Chromium for it does nbval run notebooks/ instead, so each notebook runs once.
CHROMIUM ?= $(or $(LECTURE13_CHROMIUM),/usr/bin/chromium)
NBVAL_NOTEBOOKS = solutions $(if $(wildcard $(CHROMIUM)),,notebooks)
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadscope --nbval-lax --nbval-current-env -p no:cacheprovider \
		tests $(NBVAL_NOTEBOOKS)

unit: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -p no:cacheprovider tests

browser: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -m browser -p no:cacheprovider tests/test_browser.py

release: $(STAMP)
	$(PY) -m lecture13 release

check-release: $(STAMP)
	$(PY) -m lecture13 release --check

execute: $(STAMP)
	for nb in solutions/*.ipynb; do \
		echo "$$nb: $$($(PY) -c "from lecture13.benchmarking import execute_notebook as e; print(f'{e(\"$$nb\", store=True):.1f} s')")"; \
	done
	$(PY) -m lecture13 release

bench: $(STAMP)
	$(PY) -m lecture13 bench

# The course as a static website from solutions/ and their stored outputs (nothing is executed).
site: $(STAMP)
	$(PY) -m lecture13.website

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
