# Every target sets up what it needs: a fresh clone runs `make demo` or `make test` as is.
SHELL := /bin/bash
PYTHON := .venv/bin/python
STAMP := .venv/.installed
ENV := . stack/env.sh &&

.PHONY: setup up down status reset demo test unit integration lint audit chaos replay bench

$(STAMP): pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)
	bash stack/stack.sh deps

up: setup
	bash stack/stack.sh up

down:
	bash stack/stack.sh down

status:
	bash stack/stack.sh status

reset:
	bash stack/stack.sh reset

demo: up
	$(ENV) $(PYTHON) -m demo $(ARGS)

unit: $(STAMP)
	$(PYTHON) -m pytest tests/unit -q

integration: up
	$(ENV) $(PYTHON) -m pytest tests/integration -q

test: up
	$(ENV) $(PYTHON) -m pytest -q

lint: $(STAMP)
	$(PYTHON) -m ruff check shared services demo stack tests
	$(PYTHON) -m mypy shared services/issuer/domain.py services/verifier/domain.py services/scheduler/domain.py

# make replay NS=otp TOPIC=shipments.dispatched ARGS="--reason unsupported_version --dry-run"
replay: $(STAMP)
	$(ENV) $(PYTHON) -m shared.kafka.replay --namespace $(NS) --topic $(TOPIC) $(ARGS)

chaos: up
	$(ENV) $(PYTHON) -m demo.chaos $(ARGS)

audit: up
	$(ENV) $(PYTHON) -m demo.audit $(or $(ARGS),--from 2018-01-01 --to 2018-01-20)

bench: up
	$(ENV) $(PYTHON) -m tests.bench $(ARGS)
