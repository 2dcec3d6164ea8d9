# Two commands for a newcomer: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-services test-faults lint typecheck check clean image image-test bench bench-soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Debian's Chromium, which the dashboard test drives: installed when missing (as root), else
## one line saying how. The test never skips, so a machine without it cannot pass by accident.
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's chromium for the dashboard test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    -o DPkg::Lock::Timeout=300 chromium >/dev/null; \
	else \
	  echo "make test needs Debian's Chromium for the dashboard test: run" \
	    "'sudo apt-get install -y chromium', then 'make test' again" >&2; \
	  exit 1; \
	fi

## Carillon on the embedded default (SQLite, in-process queue, dry-run channels) at :8000
run: $(STAMP)
	$(BIN)/carillon serve --host 127.0.0.1 --port 8000

## The suite on the embedded default
test: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest -q

## The same suite on PostgreSQL + Redis (they must be running)
test-services: $(STAMP) $(CHROMIUM)
	CARILLON_DATABASE_URL=$${CARILLON_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
	CARILLON_REDIS_URL=$${CARILLON_REDIS_URL:-redis://127.0.0.1:6379/0} \
	$(BIN)/pytest -q

## The fault matrix: real api/worker/scheduler processes on a private PostgreSQL and Redis
## that the tests stop, kill and restart (needs PostgreSQL's server binaries and redis-server)
test-faults: $(STAMP)
	$(BIN)/pytest -q -m faults tests/faults

## The container image, carillon:latest (Docker where its daemon answers, else podman); on
## Debian bookworm's python3 (made with mmdebstrap) where python:3.11-slim cannot be pulled
# The most this machine's root may set in a container: engines ask for more by default.
CONTAINER_ULIMITS ?= nofile=20000:20000 nproc=32768:32768
export CONTAINER_ULIMITS
image:
	image/build.sh

## The image run as containers: serve, each production role on this machine's PostgreSQL and
## Redis, SIGTERM, bad settings, compose.yaml (installs podman, runc, mmdebstrap if missing)
image-test: $(STAMP)
	@for tool in podman runc mmdebstrap; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	fi
	ENGINE=podman IMAGE=carillon:image-test BUILD_FLAGS=--layers=false image/build.sh
	@id=$$(podman image inspect --format '{{.Id}}' carillon:image-test); \
	CARILLON_IMAGE=carillon:image-test $(BIN)/pytest -q -m image tests/image; status=$$?; \
	podman rmi --force $$id >/dev/null; exit $$status

## Every throughput and latency figure beside a bound measured in the same run, as one table
## (PostgreSQL and Redis must be running; ~10 minutes on 2 cores). The full-size run:
## make bench BENCH_FLAGS="--messages 100000 --timers 1000000"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_FLAGS)

## 30 minutes at 200 events/s: p99 latency and memory of the first and last 5 minutes (not in CI)
bench-soak: $(STAMP)
	$(BIN)/python -m bench.soak $(BENCH_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check app channels tests bench migrations
	$(BIN)/ruff format --check app channels tests bench migrations

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) carillon.db carillon.db-wal carillon.db-shm carillon.db.secret
