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

.PHONY: setup lab test outputs full book slides clean

## setup: venv, pinned torch, the package with its dev extras, the course's JupyterLab settings, the data sets (idempotent)
setup: $(VENV)/.installed $(VENV)/.lab-settings
	@$(BIN)/python -m cl_course_lib fetch-data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

# jupyter/ mirrors the environment's prefix: the announcements extension off (no "get notified
# about Jupyter news?" prompt, nothing asked of the network), the light theme, kernels started
# without asking.
$(VENV)/.lab-settings: $(VENV)/.installed $(shell find jupyter -type f)
	cp -R jupyter/. $(VENV)/
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

## book: build the Jupyter Book site into _build/html from the committed outputs (warnings are errors)
book: setup
	$(BIN)/jupyter-book build . --config book.yml --toc toc.yml -W --keep-going

## slides: set up, then turn each chapter into a reveal.js deck in _build/slides/, a folder that works offline (slides_config.py)
slides: setup
	$(BIN)/jupyter nbconvert --config slides_config.py chapters/*.ipynb
	@echo "decks in _build/slides/: open any *.slides.html (file:// or python -m http.server)"

clean:
	rm -rf $(VENV) _build
