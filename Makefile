# Set-up and everyday commands. `make demo` and `make test` are the two commands a fresh clone needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch keeps installs small; override for a GPU box, e.g. TORCH_SPEC="torch==2.13.0".
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= -q

.PHONY: install demo test test-all gpu-check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip setuptools wheel
	$(PY) -m pip install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(PY) -m pip install $(PIP_FLAGS) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/stargan-demo --out demo-out

test: install
	$(PY) -m pytest -q

test-all: install
	$(PY) -m pytest -q -m ""

gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) demo-out .pytest_cache
