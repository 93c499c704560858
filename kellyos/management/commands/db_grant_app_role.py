"""Give the application's database role what it needs and nothing that would let it rewrite the books.

Run after every `migrate`, as the role that owns the tables (the one migrations run as):

    python manage.py db_grant_app_role kellyos_app

The application then connects as `kellyos_app`. It may read everything and write the operational
tables, but it can only INSERT journal entries and lines (no UPDATE, DELETE or TRUNCATE), cannot
write the balance tables at all (the balance triggers run with their owner's rights), and, not owning
the tables, cannot switch their triggers off.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from psycopg import sql

APPEND_ONLY_TABLES = ["ledger_journalentry", "ledger_journalline"]
TRIGGER_MAINTAINED_TABLES = ["ledger_accountbalance", "ledger_customerbalance"]


class Command(BaseCommand):
    help = "Grant the application role its rights on every table, keeping the ledger append-only."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("role", help="the database role the application connects as")

    def handle(self, *args: Any, role: str, **options: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone() is None:
                raise CommandError(
                    f"No database role {role!r}; create it first (CREATE ROLE {role} LOGIN PASSWORD ...)."
                )
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
            if cursor.fetchone()[0]:
                raise CommandError(
                    f"{role!r} is a superuser: superusers bypass every guard. Use a plain role."
                )
            schema = sql.Identifier(self._schema(cursor))
            who = sql.Identifier(role)
            statements = [
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, who),
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
                    schema, who
                ),
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, who),
                sql.SQL("REVOKE TRUNCATE, TRIGGER, REFERENCES ON ALL TABLES IN SCHEMA {} FROM {}").format(
                    schema, who
                ),
            ]
            for table in APPEND_ONLY_TABLES:
                statements.append(
                    sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), who)
                )
            for table in TRIGGER_MAINTAINED_TABLES:
                statements.append(
                    sql.SQL("REVOKE INSERT, UPDATE, DELETE ON {} FROM {}").format(sql.Identifier(table), who)
                )
            with transaction.atomic():
                for statement in statements:
                    cursor.execute(statement.as_string(cursor.connection))
        self.stdout.write(
            self.style.SUCCESS(f"Granted {role}: ledger append-only, balances trigger-maintained.")
        )

    @staticmethod
    def _schema(cursor: Any) -> str:
        cursor.execute("SELECT current_schema()")
        return str(cursor.fetchone()[0])
