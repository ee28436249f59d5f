# Maskloop: `make run` installs and starts the app with the demo project; `make test` installs and runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: run test install browser-deps demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/maskloop demo

run: demo
	$(BIN)/streamlit run app.py --server.port $(PORT)

# Debian's Chromium for the browser tests (never Playwright's own download: there is no network for it).
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is not installed: browser tests will be skipped (install it: sudo apt-get install chromium)"; fi

# Two workers, a test file each at a time (its module fixtures stay in one process): a browser test mostly waits on
# the page, a training test mostly computes, so the two overlap well on two cores.
test: install browser-deps
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/import_speed.py
	$(BIN)/python bench/predict_latency.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/time_to_quality.py
	$(BIN)/python bench/faults.py --quick
	$(BIN)/python bench/limits.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
