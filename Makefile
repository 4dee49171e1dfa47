# mlapi: `make run` serves everything on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test test-jobs-s3 lint format setup bench clean proto

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

# The local settings (DJANGO_DEBUG=1, a generated secret key) that the settings read, so
# `.venv/bin/python manage.py ...` works in a plain shell too. Written once; never overwritten.
.env:
	$(PYTHON) mlapi/envfile.py $@

setup: $(VENV)/.runtime .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py bootstrap_demo

run: setup
	exec $(PY) -m mlapi.serve

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

# The gRPC messages' descriptor set (committed; tests/test_grpc_server.py checks it is current).
proto: $(VENV)/.dev
	$(PY) -m grpc_tools.protoc -I predictions/grpc --descriptor_set_out=predictions/grpc/inference.binpb inference.proto

clean:
	rm -rf var/test .pytest_cache
