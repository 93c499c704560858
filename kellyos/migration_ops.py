"""Migration operations shared by the apps."""

from typing import Any

from django.db import migrations


def contains_search_indexes(indexes: dict[str, tuple[str, str]]) -> migrations.RunPython:
    """pg_trgm indexes on upper(column::text), the expression the admin's `icontains` search compares,
    so it stays fast at volume (name -> (table, column)).

    Skipped where the server has no pg_trgm: the embedded pgserver wheel ships no contrib modules.
    Search still works there, by reading the table, which suits a development database's size."""

    def create(apps: Any, schema_editor: Any) -> None:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
            if cursor.fetchone() is None:
                return
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            for name, (table, column) in indexes.items():
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
                    f"USING gin (upper({column}::text) gin_trgm_ops)"
                )

    def drop(apps: Any, schema_editor: Any) -> None:
        with schema_editor.connection.cursor() as cursor:
            for name in indexes:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")

    return migrations.RunPython(create, drop)
