.PHONY: run test lint format bench

# Everything: web, Celery worker and beat, the simulator and a mail sink, with demo data.
run:
	bin/run

# Every test against PostgreSQL and Redis (started if installed but stopped).
test:
	bin/test

lint:
	bin/setup && .venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

# Rating benchmark on a throw-away PostgreSQL database (see bench/README.md).
bench: ; .venv/bin/python bench/rating.py
