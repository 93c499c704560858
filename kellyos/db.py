"""Small database helpers shared by the apps."""

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import IntegrityError, connection, models
from psycopg.errors import DeadlockDetected, SerializationFailure

M = TypeVar("M", bound=models.Model)


def rows_of(model: type[M], where: str, params: Sequence[Any], *, tail: str = "") -> list[M]:
    """`model` rows matching a hand-written condition (`tail`: ORDER BY, LIMIT, FOR UPDATE).

    For the reads on every payment's path: compiling an ORM query there costs more than running it."""
    columns, names = _select_list(model)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {model._meta.db_table} WHERE {where} {tail}", params)  # noqa: S608
        return [model.from_db(connection.alias, names, row) for row in cursor.fetchall()]


def row_first(model: type[M], where: str, params: Sequence[Any], *, tail: str = "") -> M | None:
    found = rows_of(model, where, params, tail=tail)
    return found[0] if found else None


@functools.cache
def _select_list(model: type[models.Model]) -> tuple[str, list[str]]:
    # Columns in concrete-field order, which is what Model.from_db expects.
    fields = model._meta.concrete_fields
    return ", ".join(f'"{field.column}"' for field in fields), [field.attname for field in fields]


def rows_fetch(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a hand-written read on a hot path (see row_first)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def lock_conflict(error: BaseException) -> bool:
    """PostgreSQL aborted the transaction for a deadlock or a serialization conflict: trying the
    whole transaction again is safe and usually succeeds."""
    return isinstance(error.__cause__, DeadlockDetected | SerializationFailure)


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the PostgreSQL constraint an IntegrityError broke, if it names one."""
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
