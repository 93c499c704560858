"""An embedded PostgreSQL server for machines where DATABASE_URL is not set.

A fresh machine needs only Python: the `pgserver` wheel carries PostgreSQL itself. Where that wheel
does not install (Python 3.13+), a project-local cluster is made with the system's `initdb` and
`pg_ctl`. Either way the data lives under `var/` and the server listens only on a Unix socket there,
so it never collides with a PostgreSQL the machine already runs. The server is left running between
commands (`make db-stop` stops it) so that `manage.py`, the dev server's reloader and the test suite
all share one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

INSTALL_HINT = (
    "Kelly OS needs PostgreSQL. Either\n"
    "  * set DATABASE_URL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/kellyos, or\n"
    "  * use Python 3.11 or 3.12, where `pip install pgserver` brings an embedded PostgreSQL, or\n"
    "  * install the PostgreSQL server binaries so that `initdb` and `pg_ctl` are on the PATH\n"
    "    (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16)."
)

# Unix socket paths are limited to about 107 bytes, including the `.s.PGSQL.5432` file name.
_MAX_SOCKET_DIR = 80


class EmbeddedPostgresError(ImproperlyConfigured):
    pass


def embedded_database(*, name: str, var_dir: Path, engine: str = "auto") -> dict[str, Any]:
    """Start (or find running) the embedded server and return a Django DATABASES entry for `name`."""
    var_dir.mkdir(parents=True, exist_ok=True)
    if engine not in {"auto", "pgserver", "system"}:
        raise EmbeddedPostgresError(f"EMBEDDED_POSTGRES must be auto, pgserver or system, not {engine!r}.")
    socket_dir: Path | None = None
    if engine in {"auto", "pgserver"}:
        socket_dir = _start_pgserver(var_dir / "pgdata", required=engine == "pgserver")
    if socket_dir is None:
        socket_dir = _start_system_cluster(var_dir / "pgdata-system")
    _create_database_if_missing(socket_dir=socket_dir, name=name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(socket_dir),
        "PORT": "5432",
    }


def _import_pgserver() -> Any | None:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); its fallback is fine.
            warnings.simplefilter("ignore")
            import pgserver  # type: ignore[import-untyped, unused-ignore]
            import pgserver._commands  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    # Its exit hook logs at INFO after test runners have closed their streams; we only want problems.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return pgserver


def _start_pgserver(pgdata: Path, *, required: bool) -> Path | None:
    pgserver = _import_pgserver()
    if pgserver is None:
        if required:
            raise EmbeddedPostgresError(
                "EMBEDDED_POSTGRES=pgserver but pgserver is not installed.\n" + INSTALL_HINT
            )
        return None
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return Path(server.get_postmaster_info().socket_dir)


def _start_system_cluster(pgdata: Path) -> Path:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        raise EmbeddedPostgresError(
            "DATABASE_URL is not set and no embedded PostgreSQL is available.\n" + INSTALL_HINT
        )
    socket_dir = pgdata if len(str(pgdata)) <= _MAX_SOCKET_DIR else _short_socket_dir(pgdata)
    # PostgreSQL refuses to run as root; as root the cluster belongs to the unprivileged `nobody`.
    run_as = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    lock_path = pgdata.parent / ".pgdata-system.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(mode=0o700, exist_ok=True)
            if run_as:
                shutil.chown(pgdata, user="nobody")
            _run([*run_as, initdb, "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8"])
        if socket_dir != pgdata:
            socket_dir.mkdir(mode=0o777, exist_ok=True)
            socket_dir.chmod(0o777)
        status = subprocess.run(
            [*run_as, pg_ctl, "-D", str(pgdata), "status"], capture_output=True, check=False
        )
        if status.returncode != 0:
            _run(
                [
                    *run_as,
                    pg_ctl,
                    "-D",
                    str(pgdata),
                    "-w",
                    "-l",
                    str(pgdata / "server.log"),
                    "-o",
                    f"-h '' -k {socket_dir}",
                    "start",
                ]
            )
    return socket_dir


def _short_socket_dir(pgdata: Path) -> Path:
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"kellyos-pg-{digest}"


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EmbeddedPostgresError(
            f"Starting the embedded PostgreSQL failed: {' '.join(command)}\n{result.stdout}{result.stderr}"
        )


def _create_database_if_missing(*, socket_dir: Path, name: str) -> None:
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            # Another process may create it between our look and our create; either way it exists.
            with contextlib.suppress(errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def stop_embedded(var_dir: Path) -> None:
    """Stop whichever embedded server is running under `var_dir` (used by `make db-stop`)."""
    for pgdata, pg_ctl in (
        (var_dir / "pgdata", _pgserver_pg_ctl()),
        (var_dir / "pgdata-system", shutil.which("pg_ctl")),
    ):
        if not (pgdata / "postmaster.pid").exists() or pg_ctl is None:
            continue
        owner = pgdata.owner()
        run_as = ["runuser", "-u", owner, "--"] if os.geteuid() == 0 and owner != "root" else []
        subprocess.run([*run_as, pg_ctl, "-D", str(pgdata), "-m", "fast", "stop"], check=False)


def _pgserver_pg_ctl() -> str | None:
    pgserver = _import_pgserver()
    return None if pgserver is None else str(pgserver._commands.POSTGRES_BIN_PATH / "pg_ctl")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m kellyos.embedded_postgres stop")
    stop_embedded(Path(__file__).resolve().parent.parent / "var")
