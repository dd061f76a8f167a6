# The two commands of the README: `make run` (the whole system on one machine) and `make test`.
# Both install what a fresh machine lacks: system packages via apt-get, Python packages from uv.lock.
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(HOME)/.local/bin/uv
endif

.PHONY: test run clean deps system-deps browser-deps backup-deps python-deps lint typecheck bench schemas fuzz faults \
	backup restore-drill fuzz-api

test: deps browser-deps backup-deps lint typecheck  ## the README's test command
	$(UV) run --frozen pytest

run: deps  ## the whole system on its embedded defaults
	$(UV) run --frozen canbao run

clean:  ## forget the local stack's state
	rm -rf .state

deps: system-deps python-deps

system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	ls /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc >/dev/null 2>&1 || missing="$$missing fonts-wqy-zenhei"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && apt-get install -y -qq $$missing; \
	fi

# The counter page's browser test: Debian's chromium (Playwright drives it; it downloads no
# browser of its own) and a CJK font, so that the screenshots it keeps show the Chinese text.
browser-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc >/dev/null 2>&1 || missing="$$missing fonts-wqy-zenhei"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && apt-get install -y -qq $$missing; \
	fi

# Backups (deploy/README.md "Backup and recovery"): Debian's pgBackRest, for `make backup` and
# the restore drill of tests/recovery (part of `make test`).
backup-deps:
	@command -v pgbackrest >/dev/null 2>&1 || { echo "installing system packages: pgbackrest"; \
	  apt-get update -qq && apt-get install -y -qq pgbackrest; }

backup: deps backup-deps  ## a full (then differential: TYPE=diff) backup of the running `make run` cluster
	$(UV) run --frozen python -m canbao_platform.local.backup --type $(or $(TYPE),full)

restore-drill: deps backup-deps  ## back up, restore to a point in time, rewind, replay; prints its figures
	$(UV) run --frozen pytest -p no:cacheprovider -q -s tests/recovery/test_restore_drill.py

python-deps:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv==$(UV_VERSION)
	$(UV) sync --frozen --quiet

lint: python-deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

# mypy --strict over the contracts, the platform, every service and the local stack.
TYPED := contracts/canbao_contracts platform/canbao_platform $(wildcard services/*/canbao_*) stack/canbao_stack

typecheck: python-deps
	$(UV) run --frozen mypy $(TYPED)

schemas: python-deps  ## regenerate the committed JSON Schema and AsyncAPI documents
	$(UV) run --frozen python -m canbao_contracts.schemas contracts/schemas

fuzz: deps  ## every parser of outside input against 2,000 generated inputs per property (~15 min)
	HYPOTHESIS_PROFILE=fuzz $(UV) run --frozen pytest -p no:cacheprovider --hypothesis-show-statistics \
	  tests/contracts/test_input_properties.py tests/identity/test_adapter_properties.py \
	  tests/contracts/test_id_number_properties.py tests/contracts/test_text.py

faults: deps  ## the fault campaign: kill -9 each component and stop PostgreSQL mid-load (~10 min)
	CANBAO_FAULTS=1 $(UV) run --frozen pytest -p no:cacheprovider -s tests/faults

# The gateway's public HTTP interface against its OpenAPI document (schemathesis), as every staff
# role and without a token, the whole system behind it: over 10,000 generated requests; prints how
# many, the answers by status, and the failures (5xx, schema violations) with a curl to replay.
fuzz-api: deps
	CANBAO_FUZZ_API_EXAMPLES=200 $(UV) run --frozen pytest -p no:cacheprovider -o timeout=1800 \
	  tests/fuzz/test_gateway_schema.py

bench: deps
	$(UV) run --frozen python -m bench
