# Two commands do everything on a fresh machine: `make demo` (the main job) and `make test`.
# Both create the virtual environment and install the project into it when that is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.faceparse-installed
OUT    ?= out/demo

.PHONY: venv demo test pytest test-slow lint typecheck format bench depth-extra clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# constraints.txt keeps torch on the local 2.13.0 CPU wheel that pip finds through this machine's pip
	# configuration (pyproject.toml only declares the supported range).
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	# The offline depth backend too, so its tests run (see depth-extra below).
	$(PY) -m pip install --quiet --no-deps "mediapipe==0.10.14"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/faceparse demo --out $(OUT)

# What CI runs (.ci/run): lint, the type checker, then the fast suite plus the 2-process DDP tests and the
# web page in headless Chromium (`browser`; skipped where Debian's chromium and chromium-driver are missing,
# which .ci/run installs).
test: lint typecheck pytest

pytest: $(STAMP)
	$(PY) -m pytest -q -m "not slow or ddp or browser"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# mypy, configured in pyproject.toml ([tool.mypy]): the package ships py.typed, so its types must hold.
typecheck: $(STAMP)
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

# The lean route to the offline depth backend (FACTS §3): mediapipe 0.10.14 (its wheel bundles the
# face-mesh models) WITHOUT its declared dependencies, which `pip install ".[depth]"` would bring: jax,
# GUI opencv beside the headless one, and protobuf<5 (which holds onnx at 1.22 and tensorboard back).
# faceparse.utils.facemesh shims the one protobuf API it lost.
depth-extra: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt scikit-image absl-py attrs flatbuffers
	$(PY) -m pip install --quiet --no-deps "mediapipe==0.10.14"

bench: $(STAMP)
	$(PY) benchmarks/synth.py

clean:
	rm -rf $(VENV) out build *.egg-info
