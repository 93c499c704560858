"""bench/seed_volume.py at a tiny scale: it still writes every column the migrations ask for, the books it
writes pass ledger_verify, and the indexes it sets aside while loading come back as migrate made them."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL"),
        reason="the seed makes its own database next to DATABASE_URL's; unset, so nothing to run it on",
    ),
]

# Everything the seed could leave different from a migrated database: indexes, triggers (and whether
# they fire) and constraints, by name and definition.
SCHEMA = """
SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()
UNION ALL
SELECT 'trigger ' || tgname || ' ' || tgenabled::text || ': ' || pg_get_triggerdef(oid)
  FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'constraint ' || conname || ': ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
"""


def test_the_volume_seed_writes_valid_books_and_leaves_the_schema_as_migrate_made_it():
    # Given a throwaway database next to the suite's
    parts = urlsplit(os.environ["DATABASE_URL"])
    url = urlunsplit(parts._replace(path=parts.path + "_seed_test"))
    try:
        # When the seed builds a thousandth of the volume in it
        seeded = subprocess.run(
            [sys.executable, "bench/seed_volume.py", "--scale", "0.001", "--database-url", url],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert seeded.returncode == 0, seeded.stderr[-4000:]
        # Then its schema is the migrated one, set-aside indexes included
        with psycopg.connect(url) as seed_db:
            seed_schema = {row[0] for row in seed_db.execute(SCHEMA)}
        with connection.cursor() as cursor:
            cursor.execute(SCHEMA)
            migrated_schema = {row[0] for row in cursor.fetchall()}
        assert seed_schema - migrated_schema == set()
        assert migrated_schema - seed_schema == set()
        # And the books it wrote through the ledger's triggers are valid
        verified = subprocess.run(
            [sys.executable, "manage.py", "ledger_verify"],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
            env={**os.environ, "DATABASE_URL": url, "DEBUG": "true"},
        )  # fmt: skip
        assert verified.returncode == 0 and "Ledger valid" in verified.stdout, verified.stderr[-4000:]
    finally:
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as admin:
            name = parts.path.lstrip("/") + "_seed_test"
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
