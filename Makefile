.PHONY: run test lint format migrate shell services-stop

run:  ## web + worker + beat with demo data (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL)
	./run

test:  ## lint, then the whole test suite
	./scripts/test

lint:  ## ruff check and format check
	./scripts/lint

format:  ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

migrate:
	.venv/bin/python manage.py migrate

shell:
	.venv/bin/python manage.py shell

services-stop:  ## stop the embedded PostgreSQL and Redis
	.venv/bin/python -m fintech.embedded stop
