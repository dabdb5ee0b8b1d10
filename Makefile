# Two commands on a fresh machine: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?= dslim/distilbert-NER
EXPORT_ARGS ?=
# What the export writes (never committed); model_repository/ holds the models' code it copies.
REPOSITORY ?= build/model_repository
CONFIG ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint export serve loadtest bench configs clean backends

setup: $(STAMP)
	@$(PY) -m triton_ner.server.wakeup >/dev/null || echo "setup: the scheduler wake-up fix is not built (no C compiler?): the server runs without it"
	@if missing="$$(backends/build-tools.sh)"; then \
		for backend in onnxruntime pytorch openvino; do PY=$(abspath $(PY)) backends/build-$$backend.sh || echo "setup: NVIDIA's $$backend backend is not built (see above); the Python-backend configs work without it"; done; \
	else echo "setup: NVIDIA's onnxruntime, pytorch and openvino backends are not built, $$missing: the Python-backend configs work without them"; fi

# The project and the load-test tooling (loadtest/, a distribution of its own), both editable: each module of the
# checkout imports under its one name, triton_ner.<...>.
$(STAMP): pyproject.toml loadtest/pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[all]' -e ./loadtest
	touch $@

## NVIDIA's onnxruntime, pytorch and openvino backends (r24.10, CPU) built from source into build/triton-backends/
## (backends/README.md): fetched from GitHub, or from the archives in TRITON_BACKEND_SOURCES=DIR, offline.
export TRITON_BACKEND_SOURCES
backends: $(STAMP)
	PY=$(abspath $(PY)) backends/build-onnxruntime.sh
	PY=$(abspath $(PY)) backends/build-pytorch.sh
	PY=$(abspath $(PY)) backends/build-openvino.sh

## Export MODEL (fixture model if the Hub is unreachable), start Triton, ask it, print entities, stop.
demo: setup
	$(PY) -m triton_ner.demo --model '$(MODEL)' --output '$(REPOSITORY)'

## The whole suite, the real Triton server included (tests/unit, integration, deployment); the 15 slowest at the end.
test: setup
	$(PY) -m pytest

## Lint and types, before the tests in CI: ruff over the tree; mypy over the product's packages as their wheels lay
## them out (checkout-tree), the Python-backend models' code included. Both target Python 3.10 (NVIDIA's image).
lint: setup checkout-tree
	$(VENV)/bin/ruff check .
	cd $(CHECKOUT_TREE) && $(abspath $(VENV))/bin/mypy --config-file $(abspath pyproject.toml) \
		--cache-dir $(abspath .cache/mypy) -p triton_ner -p triton_ner_loadtest

## The fast part for development: tests/unit (no server, compiler or container tool; about a minute).
.PHONY: test-unit
test-unit: setup
	$(PY) -m pytest tests/unit

## The container deployment on CPU (tests/containers/, minutes): installs podman when missing (root), builds the CPU
## images on a Debian base made with debootstrap, runs docker-compose.yml's export job, cpu profile and Locust with
## podman-compose, asks the server from here, provokes the faults; removes every container, volume and network it made.
.PHONY: compose-test
compose-test: setup
	$(PY) -m pytest tests/containers -s -p no:cacheprovider

## Export MODEL into REPOSITORY (more with EXPORT_ARGS, e.g. "--format both --precision int8").
export: setup
	$(PY) -m triton_ner.export --model '$(MODEL)' --output '$(REPOSITORY)' --fallback-to-fixture --force $(EXPORT_ARGS)

## Serve REPOSITORY on ports 8000 (HTTP), 8001 (gRPC), 8002 (metrics) until Ctrl-C; CONFIG=int8 or
## CONFIG=torchscript serves that exported variant.
serve: setup
	test -f '$(REPOSITORY)/manifest.json' || $(MAKE) export
	$(PY) -m triton_ner.serve --model-repository '$(REPOSITORY)' $(if $(CONFIG),--config-name $(CONFIG))

## Headless Locust run (16 users, 30 s) against the local Triton, started if needed; reports in results/loadtest.
## More options: .venv/bin/python -m triton_ner_loadtest.run --help
loadtest: setup
	test -f '$(REPOSITORY)/manifest.json' || $(MAKE) export
	$(PY) -m triton_ner_loadtest.run --model-repository '$(REPOSITORY)' $(LOADTEST_ARGS)

## Soak (minutes; not in CI): 32 Locust users on a server of its own for SOAK_MINUTES (10), resident memory of
## tritonserver and each stub sampled; fails on a failed request or growth over 50 MB after warm-up;
## results/soak/ (memory.csv, locust_stats_history.csv, soak.png). More: SOAK_ARGS, --help.
SOAK_MINUTES ?= 10
.PHONY: soak
soak: setup
	test -f '$(REPOSITORY)/manifest.json' || $(MAKE) export
	$(PY) -m triton_ner_loadtest.soak --model-repository '$(REPOSITORY)' --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

## Benchmark: transformers pipeline vs in-process ONNX Runtime vs served (FP32 and INT8) on the full-size
## random-weight model; table on stdout, results/bench/bench.json and bench.png.
bench: setup
	$(PY) -m triton_ner_loadtest.bench $(BENCH_ARGS)

## GPU check (loadtest/gpu_check.py), on any machine with an NVIDIA GPU and PyTorch: GPU logits proven against
## CPU FP32, the model alone at batch 1-256 x 16-512 tokens, the ensemble served at concurrency 1-256 through the
## serving pack or the local Triton; results/gpu-check/gpu_check.json. No setup step: .venv's python when there is
## one, else the machine's python3 (3.11 or later; it needs torch, transformers and tokenizers only) over
## CHECKOUT_TREE. Without a GPU: a CPU dry run.
.PHONY: gpu-check gpu-check-pack checkout-tree
gpu-check:
ifneq ($(wildcard $(PY)),)
	$(PY) -m triton_ner_loadtest.gpu_check $(GPU_CHECK_ARGS)
else
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "gpu-check: error: $(PYTHON) is older than 3.11: name a newer one (make gpu-check PYTHON=python3.12), or make setup first" >&2; exit 2; }
	$(MAKE) --no-print-directory checkout-tree
	PYTHONSAFEPATH=1 PYTHONPATH=$(abspath $(CHECKOUT_TREE)) $(PYTHON) -m triton_ner_loadtest.gpu_check $(GPU_CHECK_ARGS)
endif

## The two distributions' packages as links, laid out as their wheels install them (pyproject.toml's and
## loadtest/pyproject.toml's package-dir), for a Python where the project is not installed: on its path, with
## PYTHONSAFEPATH=1 (the checkout's own triton_ner/ would otherwise come first), every module imports under its one
## name from the checkout's files.
CHECKOUT_TREE ?= build/checkout
checkout-tree:
	rm -rf $(CHECKOUT_TREE) && mkdir -p $(CHECKOUT_TREE)/triton_ner
	ln -s $(abspath triton_ner)/* $(CHECKOUT_TREE)/triton_ner/
	ln -s $(abspath client) $(CHECKOUT_TREE)/triton_ner/client
	ln -s $(abspath export) $(CHECKOUT_TREE)/triton_ner/export
	ln -s $(abspath model_repository) $(CHECKOUT_TREE)/triton_ner/model_repository
	ln -s $(abspath loadtest) $(CHECKOUT_TREE)/triton_ner_loadtest

## What gpu-check needs to serve on a GPU machine without Triton (loadtest/gpu_pack.py): the local Triton runtime
## and TorchScript repositories without weights, in build/gpu-check/serving-pack.tar.xz (about 40 MB);
## GPU_PACK_ARGS="--python 3.12" for a GPU machine whose python3 is 3.12 (default: this one's).
gpu-check-pack: setup
	$(PY) -m triton_ner_loadtest.gpu_pack $(GPU_PACK_ARGS)

## Regenerate the committed config.pbtxt files from export/configs.py.
configs: setup
	$(PY) -m triton_ner.export.configs

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis build/model_repository
