.PHONY: run test lint format migrate shell services-stop venv

venv:  ## create .venv with the runtime and development requirements
	bash -c 'source scripts/venv.sh && ensure_venv requirements.txt requirements-dev.txt'

run:  ## web + worker + beat with demo data (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL)
	./run

test:  ## lint, then the whole test suite
	./scripts/test

lint:  ## ruff check and format check
	./scripts/lint

format: venv  ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

migrate: venv
	.venv/bin/python manage.py migrate

shell: venv
	.venv/bin/python manage.py shell

services-stop: venv  ## stop the embedded PostgreSQL and Redis
	.venv/bin/python -m fintech.embedded stop
