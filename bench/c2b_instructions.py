"""Instructions per C2B confirmation, of the Python process and of the PostgreSQL backend serving it.

    python bench/c2b_instructions.py [--small 20] [--large 120] [--seed-confirmations 2000]

CPU seconds on a shared virtual machine move by a third within the hour, more than most changes to
the booking do; instructions counted by valgrind move by a few tenths of a percent at most for the
same code. So this counts both sides of a confirmation:
1. a private PostgreSQL cluster in a temporary directory (Unix socket only, so it collides with
   nothing), built with the machine's `initdb`, and a database of its own, migrated and seeded with
   the load bench's customers and --seed-confirmations bookings (so tables are big enough for the
   plans they will have in use), then analysed;
2. twice, with the server started afresh under `valgrind --tool=callgrind` (autovacuum off) and a
   fresh copy of that database: a Python process, itself under callgrind, posts --small, then
   --large, new confirmations through Django's test client (middleware, view and booking,
   production settings, PYTHONHASHSEED=0);
3. (large - small) / (large - small confirmations), for the Python process and for the backend that
   served it: one confirmation's instructions, start-up and imports cancelled out.

Needs valgrind and PostgreSQL's server programs (`--pg-bin`, by default `pg_config --bindir`); as root
the cluster runs as `nobody`, as the embedded one does. Takes about five minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from c2b_load import SERVER_SETTINGS, TOKEN, recreate_database, seed  # noqa: E402

SEEDED = "kellyos_instructions_seeded"
COUNTED = "kellyos_instructions_counted"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--large", type=int, default=120)
    parser.add_argument("--seed-confirmations", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--pg-bin", type=Path, help="directory of initdb, pg_ctl and postgres")
    parser.add_argument("--child", nargs=2, metavar=("ACTION", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), customers=args.customers)
        return
    if args.large <= args.small:
        parser.error("--large must be more than --small")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    pg_bin = args.pg_bin or Path(
        subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    )
    with Cluster(pg_bin) as cluster:
        print(
            f"seeding {args.customers} customers and {args.seed_confirmations} confirmations ...", flush=True
        )
        cluster.start()
        cluster.python(["seed", str(args.seed_confirmations)], database=SEEDED, customers=args.customers)
        cluster.psql(SEEDED, "VACUUM ANALYZE")
        cluster.stop()
        counts = {n: cluster.count(n, customers=args.customers) for n in (args.small, args.large)}
    confirmations = args.large - args.small
    python = (counts[args.large][0] - counts[args.small][0]) / confirmations
    database = (counts[args.large][1] - counts[args.small][1]) / confirmations
    for n, (python_total, database_total) in counts.items():
        # A forked backend starts with the postmaster's counts so far; both runs start the server
        # afresh and alike, so the difference holds the backends' own work only.
        print(f"{n} confirmations: Python process {python_total:,} instructions, backend (with the "
              f"postmaster's start) {database_total:,}")  # fmt: skip
    print(f"per confirmation: Python {python / 1e6:.3f} M instructions, PostgreSQL backend "
          f"{database / 1e6:.3f} M, together {(python + database) / 1e6:.3f} M")  # fmt: skip


class Cluster:
    """A throwaway PostgreSQL cluster on a Unix socket in a temporary directory."""

    def __init__(self, pg_bin: Path) -> None:
        self.pg_bin = pg_bin
        self.run_as = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []

    def __enter__(self) -> Cluster:
        self.home = Path(tempfile.mkdtemp(prefix="kellyos-instr-"))
        self.data = self.home / "data"
        self.counts = self.home / "callgrind"
        self.server: subprocess.Popen[bytes] | None = None
        try:
            self.counts.mkdir()
            self.data.mkdir(mode=0o700)
            if self.run_as:  # the server runs as nobody: it must reach its socket and write its counts
                self.home.chmod(0o777)
                self.counts.chmod(0o777)
                shutil.chown(self.data, user="nobody")
            self._run([str(self.pg_bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                       "--encoding=UTF8"])  # fmt: skip
        except BaseException:
            shutil.rmtree(self.home, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def start(self, *, callgrind: bool = False) -> None:
        command = [str(self.pg_bin / "postgres"), "-D", str(self.data), "-h", "", "-k", str(self.home),
                   "-c", "autovacuum=off"]  # fmt: skip
        if callgrind:
            command = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={self.counts}/backend.%p",
                *command,
            ]
        with open(self.home / "server.log", "ab") as log:  # the server keeps its own copy open
            self.server = subprocess.Popen([*self.run_as, *command], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 180
        while subprocess.run([str(self.pg_bin / "pg_isready"), "-q", "-h", str(self.home)]).returncode:
            if self.server.poll() is not None or time.monotonic() > deadline:
                log_tail = (self.home / "server.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"PostgreSQL did not start:\n{log_tail}")  # the directory goes on exit
            time.sleep(0.5)

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is None or server.poll() is not None:
            return
        try:
            self._run([str(self.pg_bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-t", "300", "stop"])
            server.wait(timeout=60)
        finally:
            if server.poll() is None:  # pg_ctl could not stop it (no postmaster.pid yet, say)
                server.kill()
                server.wait()

    def url(self, database: str) -> str:
        return f"postgres://postgres@/{database}?host={quote(str(self.home))}"

    def psql(self, database: str, *statements: str) -> None:
        for statement in statements:
            psql = [str(self.pg_bin / "psql"), "-q", "-h", str(self.home), "-U", "postgres", "-d", database]
            self._run([*psql, "-c", statement])

    def python(
        self, action: list[str], *, database: str, customers: int, callgrind: Path | None = None
    ) -> str:
        command = [sys.executable, __file__, "--customers", str(customers), "--child", *action]
        if callgrind is not None:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}", *command]
        env = {**os.environ, "DATABASE_URL": self.url(database), "PYTHONHASHSEED": "0",
               "REFERENCES_FILE": str(self.home / "references.json")}  # fmt: skip
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(action)} failed:\n{result.stdout}{result.stderr[-3000:]}")
        return result.stdout

    def count(self, confirmations: int, *, customers: int) -> tuple[int, int]:
        """Instructions of a Python process posting `confirmations`, and of the backend serving it,
        on a server started afresh under callgrind."""
        for stale in self.counts.glob("backend.*"):
            stale.unlink()
        self.start(callgrind=True)
        try:
            self.psql(
                "postgres",
                f"DROP DATABASE IF EXISTS {COUNTED}",
                f"CREATE DATABASE {COUNTED} TEMPLATE {SEEDED}",
            )
            python_file = self.counts / f"python.{confirmations}"
            output = self.python(
                ["post", str(confirmations)], database=COUNTED, customers=customers, callgrind=python_file
            )
            backend = int(output.split("backend ", 1)[1].split()[0])
            # The backend writes its counts as it exits, just after the client has gone.
            backend_file = self.counts / f"backend.{backend}"
            deadline = time.monotonic() + 120
            while not (backend_file.exists() and "\ntotals:" in backend_file.read_text()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"no callgrind counts from backend {backend}")
                time.sleep(0.5)
        finally:
            self.stop()
        return _total(python_file), _total(backend_file)

    def _run(self, command: list[str]) -> None:
        result = subprocess.run([*self.run_as, *command], cwd=self.home, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def _total(callgrind_file: Path) -> int:
    for line in callgrind_file.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"{callgrind_file} has no totals")


def child(action: str, confirmations: int, *, customers: int) -> None:
    """Inside the cluster's environment: seed the database, or post confirmations to a seeded copy."""
    references_file = Path(os.environ["REFERENCES_FILE"])
    env = {**os.environ, **SERVER_SETTINGS, "ALLOWED_HOSTS": SERVER_SETTINGS["ALLOWED_HOSTS"] + ",testserver"}
    if action == "seed":
        recreate_database(env, SEEDED)
        references = seed(customers)
        references_file.write_text(json.dumps(references))
        prefix = "IS"
    else:
        os.environ.update(env)
        import django

        django.setup()
        references = json.loads(references_file.read_text())
        prefix = "IP"
    from django.db import connection
    from django.test import Client

    from tests.mpesa.payloads import c2b

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    rng = random.Random(2026)
    client = Client(REMOTE_ADDR="127.0.0.1")
    url = f"/api/webhooks/c2b/{TOKEN}/confirmation"
    for n in range(confirmations):
        # The load bench's mix of account numbers, every one a new receipt (a booking).
        account = rng.choice(references) if rng.random() < 0.92 else f"UNKNOWN{n}"
        body = c2b(trans_id=f"{prefix}{n:08d}", amount=str(rng.choice([50, 100, 250, 500, 1000, 2500])),
                   account=account)  # fmt: skip
        answer = client.post(url, json.dumps(body), content_type="application/json")
        assert answer.status_code == 200 and answer.json()["ResultCode"] == 0, answer.content
    print(f"posted {confirmations}; backend {backend}")


if __name__ == "__main__":
    main()
