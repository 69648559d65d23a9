# Two set-up commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA ?= ../shared/data
DEMO_FIELD := $(SHARED_DATA)/surveys/sdss_frames/003918-3-0213
DEMO_OUT ?= outputs/demo
# torch comes first from its CPU build (the plain name would pull a multi-GB CUDA build).
TORCH_SPEC ?= torch==2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test install install-test benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install $(TORCH_SPEC)
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/skysort cutout --images '$(DEMO_FIELD)/frame-*-*.fits.bz2' --catalog $(DEMO_FIELD)/objects.csv \
		--size 64 --out $(DEMO_OUT)/sdss_003918-3-0213.h5 --mosaic $(DEMO_OUT)/sdss_003918-3-0213_mosaic.png
	$(BIN)/skysort info $(DEMO_OUT)/sdss_003918-3-0213.h5 --json > $(DEMO_OUT)/sdss_003918-3-0213_summary.json
	$(BIN)/skysort simulate --survey kids --kind sources --balanced --n 3000 --seed 7 --image-bands r --stamp-size 32 \
		--out $(DEMO_OUT)/kids_sources.h5 --quiet
	$(BIN)/skysort evaluate --model sgq-kids --data $(DEMO_OUT)/kids_sources.h5 --out $(DEMO_OUT)/sgq_kids --quiet
	$(BIN)/skysort evaluate --model sgq-sdss --data $(DEMO_OUT)/sdss_003918-3-0213.h5 --out $(DEMO_OUT)/sgq_sdss_field --quiet
	@echo "demo outputs in $(DEMO_OUT)/"

test: install-test
	$(BIN)/python -m pytest -q

benchmarks: install
	$(BIN)/python benchmarks/cutout_throughput.py
	$(BIN)/python benchmarks/stampset_io.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
