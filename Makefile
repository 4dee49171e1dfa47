# mlapi: `make run` serves everything on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test test-jobs-s3 lint format setup bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

setup: $(VENV)/.runtime
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py collectstatic --noinput --verbosity 0
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py bootstrap_demo

run: setup
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} exec $(PY) -m mlapi.serve

test: $(VENV)/.dev
	$(VENV)/bin/pytest

# The batch-job tests again, with inputs, parts, results and artifacts in S3 (moto's server).
test-jobs-s3: $(VENV)/.dev
	MLAPI_TEST_OBJECT_STORAGE=s3 $(VENV)/bin/pytest tests/test_jobs_api.py tests/test_jobs_worker.py \
		tests/test_jobs_crash.py tests/test_jobs_housekeeping.py tests/test_portal_jobs.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.dev
	@command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
		|| { echo "make bench needs wrk: apt-get install -y wrk" >&2; exit 1; }
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf var/test .pytest_cache
