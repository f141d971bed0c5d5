# The two quick-start commands are `make demo` and `make test`; each creates (or reuses) the
# local venv .venv and installs the kit from this repo's own files: the exact verified versions of
# requirements-lock.txt (settings.ini declares the ranges a user's own environment may have).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.stitchup_installed

.PHONY: demo test test-lowest test-nbs test-py test-slow docs docs-from-tests readme browser-test export venv

## the venv, with pip: made if missing, and given pip if it has none (a venv that `python3 -m venv` began before Debian's
## python3-venv was installed has a python and no pip; venv run again on the folder adds it, keeping what is installed).
## It is made only from a Python settings.ini's min_python admits, else the make stops saying so.
MIN_PYTHON := $(shell sed -n 's/^min_python *= *//p' settings.ini)
PYCHECK = import sys; need = tuple(map(int, "$(MIN_PYTHON)".split("."))); have = sys.version_info[:2]; \
  sys.exit(None if have >= need else "$(PYTHON) is Python %d.%d; stitchup_nb needs $(MIN_PYTHON) or later (settings.ini min_python): pass one as PYTHON, e.g. make demo PYTHON=python3.11" % have)
venv:
	@$(BIN)/python -m pip --version > /dev/null 2>&1 || { $(PYTHON) -c '$(PYCHECK)' && $(PYTHON) -m venv $(VENV); }

## The install goes through uv (its version locked too) where uv reaches the package index: it fetches and unpacks the
## ~6.5 GB in parallel, about twice as fast as pip here, and compiles the bytecode as pip does. Where it cannot (uv reads
## no pip configuration: a mirror, find-links), pip installs the same lock; INSTALLER=pip skips uv.
INSTALLER ?= uv
$(STAMP): settings.ini setup.py requirements-lock.txt
	$(MAKE) --no-print-directory venv VENV=$(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@echo "Installing stitchup_nb and its pinned dependencies into $(VENV) (a minute or a few the first time; torch is large)..."
	@if [ "$(INSTALLER)" = uv ] && $(BIN)/python -m pip install -q -c requirements-lock.txt uv \
	    && $(BIN)/python -m uv pip install -q --compile-bytecode --python $(BIN)/python -c requirements-lock.txt -e ".[dev]"; then echo "installed with uv"; \
	  else [ "$(INSTALLER)" = pip ] || echo "uv could not install (see above): pip installs the same lock"; \
	    $(BIN)/python -m pip install -q -c requirements-lock.txt -e ".[dev]"; fi
	touch $(STAMP)

## the main job: Digits-MLT-Noise-0.5 (flip), full method, CPU
demo: $(STAMP)
	$(BIN)/stitchup_train --dataset digits --method full --noise_rate 0.5 --work_dir work_dirs/digits_0.5

## every test: all notebooks through nbdev_test, then pytest
test: $(STAMP)
	$(BIN)/python tools/run_tests.py

## the same notebooks, tests and browser test on the oldest versions settings.ini declares, in a venv of their own
## (tools/lowest_versions.py; the published numbers are checked by `make test`, with the locked versions)
LOWEST = .venv-lowest
test-lowest:
	$(MAKE) --no-print-directory venv VENV=$(LOWEST)
	$(PYTHON) tools/lowest_versions.py > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install -q --upgrade pip
	$(LOWEST)/bin/python -m pip install -q -c $(LOWEST)/constraints.txt -e ".[dev]"
	$(LOWEST)/bin/python tools/run_tests.py --code-only
	STITCHUP_BROWSER_TEST=1 $(LOWEST)/bin/python -m pytest tests/browser -q -rs

test-nbs: $(STAMP)
	$(BIN)/python tools/nbtest.py --do_print   # nbdev_test, one PyTorch thread a notebook

test-py: $(STAMP)
	$(BIN)/python -m pytest tests/

## the long cells (`#| slow`): full evidence tables and sweeps
test-slow: $(STAMP)
	$(BIN)/nbdev_test --flags slow --do_print

export: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

readme: $(STAMP)
	$(BIN)/python tools/make_readme.py

## the StitchBrowser in a real JupyterLab, in Debian's chromium (apt-get install chromium; never downloaded)
browser-test: $(STAMP)
	STITCHUP_BROWSER_TEST=1 $(BIN)/python -m pytest tests/browser -q -rs

## every notebook executed and rendered to HTML under _docs/, offline (`nbdev_docs` needs Quarto)
docs: $(STAMP)
	$(BIN)/python tools/render_docs.py

## the same pages from the outputs `make test` recorded (what CI does: each notebook runs once)
docs-from-tests: $(STAMP)
	$(BIN)/python tools/render_docs.py --outputs _docs/outputs
