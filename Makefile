# Kelly OS. `make run` serves the app with demo data; `make test` runs linters and the whole suite.
# Without DATABASE_URL both use an embedded PostgreSQL under var/ (kellyos/embedded_postgres.py).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_SETTINGS := kellyos.settings.test

.PHONY: install run test lint pytest bench bench-volume drills db-stop clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

run: export DEBUG ?= true
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_load
	$(BIN)/python manage.py runserver 127.0.0.1:8000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run --settings $(TEST_SETTINGS)
	$(BIN)/mypy kellyos ledger customers invoices pos mpesa
	SECRET_KEY=deploy-check-$$(date +%s)-not-a-real-secret-but-long-enough-for-the-check ALLOWED_HOSTS=kellyos.example \
	  MPESA_WEBHOOK_TOKEN=0123456789abcdef0123456789abcdef DEBUG=false \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

pytest: install
	$(BIN)/pytest

test: lint pytest

bench: install
	DJANGO_SETTINGS_MODULE=$(TEST_SETTINGS) $(BIN)/python bench/ledger_post.py
	$(BIN)/python bench/c2b_profile.py
	$(BIN)/python bench/c2b_load.py

# Reads at volume: builds 10^6 receipts / 10^5 customers in <DATABASE_URL>_volume (VOLUME_SCALE=0.01 for
# a quick run), then times the reads against their targets. Needs DATABASE_URL (a PostgreSQL server).
bench-volume: install
	$(BIN)/python bench/seed_volume.py --scale $(or $(VOLUME_SCALE),1.0)
	$(BIN)/python bench/reads.py

# Fault drills (bench/drills/) at full scale: killed workers, a PostgreSQL restart (on a private
# cluster of their own), two hosts, concurrent payments, the retry meeting a live booking, more live
# screens than threads, a Safaricom that hangs while cashiers send prompts. Each makes its own
# database next to DATABASE_URL's and exits non-zero on any violation (all run; the target fails if
# any did); `make test` runs them at a small scale.
drills: install
	@status=0; for drill in worker_sigkill postgres_restart two_hosts payments_deadlock retry_vs_live_booking open_screens slow_daraja; do \
	  echo "$(BIN)/python bench/drills/$$drill.py"; $(BIN)/python bench/drills/$$drill.py || status=1; \
	done; exit $$status

# Stops the embedded PostgreSQL left running under var/ (it keeps running between commands).
db-stop:
	$(BIN)/python -m kellyos.embedded_postgres stop

clean: db-stop
	rm -rf $(VENV) var
