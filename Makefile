# lecture13: two commands for students (`make lab`, `make test`), a few more for instructors.
# Works from a fresh clone on a machine with python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2
NOTEBOOK ?= notebooks/00_generative_models.ipynb

.PHONY: lab test unit browser nbval release check-release execute bench clean help

help:
	@echo "make lab       start JupyterLab on the course (sets up $(VENV) first)"
	@echo "make test      the whole test suite: unit tests + every notebook (nbval)"
	@echo "make unit      unit tests only"
	@echo "make browser   the browser tests only: every student notebook in JupyterLab in Chromium"
	@echo "make release   rebuild the student notebooks/ from solutions/"
	@echo "make execute   re-run every notebook in solutions/ and store its outputs"
	@echo "make bench     measure everything the course promises into benchmarks/results.md"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lecture13)"
	touch $(STAMP)

lab: $(STAMP)
	$(PY) -m jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root,) $(NOTEBOOK)

# One BLAS thread per worker: JOBS workers on JOBS cores, no oversubscription (kernels inherit it).
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) --dist loadscope --nbval-lax --nbval-current-env -p no:cacheprovider \
		tests solutions notebooks

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

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
