# Entry points; each bootstraps .venv first (fast when nothing changed).
.PHONY: bootstrap server test lint protos bench clean

ARGS ?=

bootstrap:
	@scripts/bootstrap.sh

## Start the embedded all-in-one server (data in ./.runlake/data; ARGS="--port 6000" etc.).
server: bootstrap
	.venv/bin/runlake server $(ARGS)

## Run the whole test suite: unit, end-to-end (real server processes), conformance.
test: bootstrap
	.venv/bin/python -m pytest -q $(ARGS)

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

protos: bootstrap
	.venv/bin/python scripts/gen_protos.py

bench: bootstrap
	.venv/bin/python -m bench.run $(ARGS)

clean:
	rm -rf .venv client/runlake/v1 .pytest_cache .mypy_cache .ruff_cache
