# Set-up and everyday commands. `make demo` and `make test` are the two commands a fresh clone needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch keeps installs small; override for a GPU box, e.g. TORCH_SPEC="torch==2.13.0".
TORCH_SPEC ?= torch==2.13.0
PIP_FLAGS ?= -q

.PHONY: install install-dev demo test test-all lint gpu-check clean

# The demo needs the runtime only (torch CPU, export, OpenVINO); the tests add the dev extra on top.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip setuptools wheel
	$(PY) -m pip install $(PIP_FLAGS) "$(TORCH_SPEC)"
	$(PY) -m pip install $(PIP_FLAGS) -e ".[export,openvino]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install $(PIP_FLAGS) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/stargan-demo --out demo-out

# The SDK tests run twice: as this CPU is, then as an AVX2-only CPU (no BF16) sees them, since what `auto`
# picks on a CPU depends on its precisions and CI machines change CPU kind (STARGAN_CPU_CAPABILITIES overrides
# what OpenVINO reports; on a CPU without BF16 both runs are the same), with OpenVINO's oneDNN kernels kept to
# AVX2 (ONEDNN_MAX_CPU_ISA), whose INT8 arithmetic differs from VNNI's: the shipped INT8 model's parity is checked
# on those kernels too. The Ray job tests run once: they pin their backend (onnxruntime), so the CPU's precisions
# do not change them, and each starts Ray (~20 s).
test: lint
	$(PY) -m pytest -q
	STARGAN_CPU_CAPABILITIES=FP32,INT8 ONEDNN_MAX_CPU_ISA=AVX2 $(PY) -m pytest -q -p no:cacheprovider tests/sdk \
		tests/test_shipped_model.py --ignore=tests/sdk/test_ray_job.py

test-all: install-dev
	$(PY) -m pytest -q -m ""

# ruff, as configured in pyproject.toml ([tool.ruff]); installed by the dev extra. `make test` (and so CI) runs it
# first: a lint finding or an unformatted file fails the run in seconds, before the tests.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) demo-out .pytest_cache
