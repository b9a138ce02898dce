# One entry point for humans and CI. `make demo` installs and runs the main job;
# `make test` installs and runs the test suite (what .ci/run calls).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= reports

.PHONY: install browser demo test test-slow test-gpu bench clean

$(BIN)/optbench: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt -e ".[cpu,dev]"
	touch $@

install: $(BIN)/optbench

demo: install
	$(BIN)/optbench run recipes/quickstart.yaml --out $(OUT)

# The HTML report's browser test needs Debian's chromium; installed when we can (root + apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
	  || echo "chromium not installed: the browser test will be skipped"

test: install browser
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

test-gpu: install
	OPTBENCH_REQUIRE_GPU=1 $(BIN)/python -m pytest -m gpu

bench: install
	$(BIN)/python benchmarks/harness_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
