# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv from the committed lock (requirements.lock) when it is missing or stale.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cvpipe-installed

# One seed per make run: it orders the whole suite (pytest-randomly) and picks the files
# pytest-alone runs on their own. `make test SEED=N` replays both.
ifeq ($(origin SEED),undefined)
SEED := $(shell $(PYTHON) -c 'import random; print(random.randrange(2**32))')
endif

.PHONY: demo test lint typecheck pytest pytest-alone lock venv clean golden components bench audit image image-gpu

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv>=0.4"
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/cvpipe demo

test: lint typecheck pytest pytest-alone

lint: $(STAMP)
	$(BIN)/ruff check cvpipe components pipelines tests bench .ci examples
	$(BIN)/ruff format --check cvpipe components pipelines tests bench .ci examples

typecheck: $(STAMP)
	$(BIN)/mypy cvpipe components pipelines

pytest: $(STAMP)
	$(BIN)/pytest --randomly-seed=$(SEED) --durations=25

# A few test files, each run alone in its own pytest process (every file must pass on its own):
# 3 files of tests/unit and tests/compile picked by SEED, or exactly FILES="tests/unit/test_x.py ...".
pytest-alone: $(STAMP)
	$(BIN)/python .ci/pytest_alone.py --seed $(SEED) $(FILES)

# Run the benchmarks at their documented sizes and rewrite the README's table from their output (tens of minutes).
bench: $(STAMP)
	$(BIN)/python bench/readme_table.py

golden: $(STAMP)
	$(BIN)/pytest tests/compile --update-golden

# Each component's compiled KFP YAML (components/<name>/component.yaml), for pipelines assembled outside Python.
components: $(STAMP)
	$(BIN)/python -m components.library

# Known vulnerabilities of the locked versions (pip-audit; needs PyPI's JSON API or OSV). Exit 2 and a
# plain "NOT AUDITED" where no vulnerability database is reachable; known findings: docs/security.md.
audit: $(STAMP)
	$(BIN)/python .ci/audit.py $(AUDIT_ARGS)

# Re-resolve the lock after changing dependencies in pyproject.toml; requirements-runtime.lock is the
# same pins without the development tools (what the component image installs).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_36 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements.lock --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_36 -o requirements-runtime.lock

# The component image (infra/docker/Dockerfile) built with Podman from the runtime lock, with no image
# registry: a Debian 12 base from debootstrap and a wheelhouse made on the host (docs/cluster.md).
# PYTHON_IMAGE=python:3.11-slim-bookworm make image builds on that image instead. Prints the size.
image: $(STAMP)
	$(BIN)/python .ci/image.py --target cpu

image-gpu: $(STAMP)
	$(BIN)/python .ci/image.py --target gpu

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs
