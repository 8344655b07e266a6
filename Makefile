# scene3d_ros: the two commands are `make demo` (main job) and `make test` (tests).
# Both set everything up on a fresh Debian 12 / Python 3.11 machine (see `make setup`).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_FLAGS ?= -q -p no:dash -p no:cacheprovider

.PHONY: setup demo test lint bench clean-venv

setup: $(VENV)/.scene3d_setup_done

$(VENV)/.scene3d_setup_done: requirements/lock.txt scripts/setup_env.sh $(wildcard interfaces/*/msg/*.msg) setup.py \
		models/scene3d_default.pt
	bash scripts/setup_env.sh $(VENV)
	touch $@

demo: setup
	$(PY) -m scene3d_ros.cli.demo $(DEMO_ARGS)

# Tests run inside a private network namespace (loopback only) when the machine allows it.
test: setup
	bash scripts/in_netns.sh $(PY) -m pytest $(PYTEST_FLAGS) $(TEST_ARGS) test

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	bash scripts/in_netns.sh $(PY) benchmarks/bench_generate_data.py
	bash scripts/in_netns.sh $(PY) benchmarks/bench_model.py
	bash scripts/in_netns.sh $(PY) benchmarks/bench_retrieval.py
	$(PY) benchmarks/bench_policy.py
	bash scripts/in_netns.sh $(PY) benchmarks/bench_graph.py
	$(PY) benchmarks/bench_inference_thread.py

clean-venv:
	rm -rf $(VENV)
