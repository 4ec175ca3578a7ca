# Thin wrappers; the logic lives in cl_course_lib and tests/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch and torchvision are pinned here, ranges in pyproject.toml: these exact builds are
# on the course machines' local disk (nothing big is downloaded).
TORCH  := torch==2.14.1 torchvision==0.29.1
FIRST_CHAPTER := chapters/01_online_linear_regression.ipynb
# pytest workers for make test; with CL_COURSE_THREADS=2 use WORKERS=1 (two cores in all)
WORKERS ?= 2

.PHONY: setup lab test outputs full book clean

## setup: venv, pinned torch, the package with its dev extras, the data sets (idempotent)
setup: $(VENV)/.installed
	@$(BIN)/python -m cl_course_lib fetch-data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

## lab: set up, then open the course in JupyterLab (prints the URL)
lab: setup
	$(BIN)/jupyter lab --allow-root --ServerApp.root_dir=. $(FIRST_CHAPTER)

## test: set up, then run every test: library, notebooks (nbval), exercises
# Two workers on two cores; conftest.py applies tests/numerics.py (one torch thread each, the
# CPU kernels' code paths, the quick profile on the CPU) to them and to nbval's kernels.
# --dist loadfile keeps each notebook's cells together, in one kernel.
test: setup
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

## outputs: re-execute every notebook under the checked settings (tests/numerics.py), saving outputs
outputs: setup
	$(BIN)/python -m tests.numerics chapters/*.md exercises/*.md solutions/*.md

## full: run the chapters in the full profile (a GPU's sizes): asserts checked, numbers not compared, nothing saved
full: setup
	$(BIN)/python -m tests.numerics --profile full chapters/*.md

## book: build the Jupyter Book site into _build/html from the committed outputs
book: setup
	$(BIN)/jupyter-book build . --config book.yml --toc toc.yml

clean:
	rm -rf $(VENV) _build
