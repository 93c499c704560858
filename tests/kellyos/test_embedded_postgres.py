import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from kellyos.embedded_postgres import EmbeddedPostgresError, embedded_database, stop_embedded

ROOT = Path(__file__).resolve().parents[2]


def test_without_any_postgresql_the_message_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(EmbeddedPostgresError) as error:
        embedded_database(name="kellyos", var_dir=tmp_path, engine="system")
    message = str(error.value)
    assert "DATABASE_URL" in message and "pgserver" in message and "initdb" in message


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(EmbeddedPostgresError, match="auto, pgserver or system"):
        embedded_database(name="kellyos", var_dir=tmp_path, engine="sqlite")


@pytest.mark.skipif(not (shutil.which("initdb") and shutil.which("pg_ctl")), reason="no system initdb/pg_ctl")
def test_system_fallback_makes_a_private_cluster_and_the_database():
    # Under the project, not in /tmp/pytest-of-root (private to root): as root the cluster runs as nobody.
    var_dir = ROOT / "var" / f"test-cluster-{uuid.uuid4().hex[:8]}"
    try:
        database = embedded_database(name="kellyos_probe", var_dir=var_dir, engine="system")
        with psycopg.connect(host=database["HOST"], user="postgres", dbname="kellyos_probe") as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("kellyos_probe",)
        # A second start finds the running server and the existing database.
        assert embedded_database(name="kellyos_probe", var_dir=var_dir, engine="system") == database
    finally:
        stop_embedded(var_dir)
        shutil.rmtree(var_dir, ignore_errors=True)
