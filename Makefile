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

# Benchmarks, billing's rating included (bench/README.md): figures and ratios, bench/RESULTS.md.
bench: ; bin/setup && bin/services all >/dev/null && .venv/bin/python -m bench.run
