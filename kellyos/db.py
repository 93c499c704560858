"""Small database helpers shared by the apps."""

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from psycopg.errors import DeadlockDetected, SerializationFailure

M = TypeVar("M", bound=models.Model)


def statement_cursor() -> CursorWrapper:
    """This thread's database cursor for the statements on every payment's path, kept open and used
    again: opening and closing a Django cursor costs about 25 µs of Python, a quarter of a short
    statement's whole cost, and a payment sends about twenty. Fetch what you need before the next
    statement, and never close it. It is a Django cursor still: errors, execute wrappers and the
    broken-transaction guard work as for any other. A new one is opened when the connection is new
    or query logging was switched on or off."""
    # `connection` is a proxy that looks this thread's connection up on every attribute: once here.
    database = connections[DEFAULT_DB_ALIAS]
    database.close_if_health_check_failed()  # what connection.cursor() checks first, once a request
    cursor: CursorWrapper | None = getattr(database, "_kellyos_statement_cursor", None)
    if (
        cursor is None
        or cursor.cursor.closed
        or cursor.cursor.connection is not database.connection
        or isinstance(cursor, CursorDebugWrapper) != database.queries_logged
    ):
        cursor = database.cursor()
        database._kellyos_statement_cursor = cursor  # type: ignore[attr-defined]
    return cursor


def rows_of(model: type[M], where: str, params: Sequence[Any], *, tail: str = "") -> list[M]:
    """`model` rows matching a hand-written condition (`tail`: ORDER BY, LIMIT, FOR UPDATE).

    For the reads on every payment's path: compiling an ORM query there costs more than running it."""
    columns, names, converters = _select_list(model)
    cursor = statement_cursor()
    cursor.execute(f"SELECT {columns} FROM {model._meta.db_table} WHERE {where} {tail}", params)  # noqa: S608
    rows = cursor.fetchall()
    if converters:  # JSON arrives as text, as for the ORM, which decodes it with the field's converter
        rows = [list(row) for row in rows]
        for row in rows:
            for index, column, field_converters in converters:
                for converter in field_converters:
                    row[index] = converter(row[index], column, connection)
    return [model.from_db(connection.alias, names, row) for row in rows]


def row_first(model: type[M], where: str, params: Sequence[Any], *, tail: str = "") -> M | None:
    found = rows_of(model, where, params, tail=tail)
    return found[0] if found else None


@functools.cache
def _select_list(model: type[models.Model]) -> tuple[str, list[str], list[tuple[int, Any, list[Any]]]]:
    # Columns in concrete-field order, which is what Model.from_db expects.
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    columns = ", ".join(f'"{field.column}"' for field in fields)
    return columns, [field.attname for field in fields], converters


def row_insert(instance: models.Model) -> None:
    """INSERT one new model instance and set its primary key, as Model.save() would (the same field
    preparation, auto_now_add included), without compiling an ORM query: for the rows every payment
    writes. Sends no model signals (we hang no business logic on them)."""
    sql, values = insert_statement(instance)
    cursor = statement_cursor()
    cursor.execute(sql, values)
    (pk,) = cursor.fetchone()
    row_inserted(instance, pk)


def insert_statement(instance: models.Model) -> tuple[str, list[Any]]:
    """The INSERT ... RETURNING pk of row_insert and its parameters, to run as part of a larger
    statement (a WITH clause); then tell the instance with row_inserted."""
    sql, fields = _insert_statement(type(instance))
    return sql, [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]


def row_inserted(instance: models.Model, pk: Any) -> None:
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias


def row_update(instance: models.Model, fields: Sequence[str]) -> None:
    """UPDATE the named fields of a saved instance, as save(update_fields=...) would, on a hot path."""
    meta = instance._meta
    model_fields = [meta.get_field(name) for name in fields]
    assignments = ", ".join(f'"{field.column}" = %s' for field in model_fields)  # type: ignore[union-attr]
    values = [
        field.get_db_prep_save(field.pre_save(instance, False), connection)  # type: ignore[union-attr]
        for field in model_fields
    ]
    cursor = statement_cursor()
    cursor.execute(
        f'UPDATE {meta.db_table} SET {assignments} WHERE "{meta.pk.column}" = %s',  # noqa: S608
        [*values, instance.pk],
    )
    if cursor.rowcount != 1:
        raise instance.DoesNotExist(f"{meta.object_name} {instance.pk} is not in the database.")  # type: ignore[attr-defined]


@functools.cache
def _insert_statement(model: type[models.Model]) -> tuple[str, list[models.Field[Any, Any]]]:
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(f'"{field.column}"' for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f'INSERT INTO {model._meta.db_table} ({columns}) VALUES ({placeholders}) RETURNING "{model._meta.pk.column}"'  # noqa: S608, E501
    return sql, fields


def rows_fetch(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a hand-written read on a hot path (see row_first)."""
    cursor = statement_cursor()
    cursor.execute(sql, params)
    rows: list[tuple[Any, ...]] = cursor.fetchall()
    return rows


def backend_tally_fold(*, table: str, keys: Sequence[str], counts: Sequence[str], lock_key: int) -> int:
    """Fold the count rows of database backends that have gone into backend 0's, in a table where each
    backend counts in rows of its own (`backend_pid`, `keys`, `counts`: unique on the pid and keys), so
    the table stays as small as the set of live backends whatever the history. Only rows no live
    backend can write are touched, and none a live backend holds, so neither waits for the other; one
    fold runs at a time, under `lock_key`. Returns how many rows went. `table` and the column names
    are the caller's constants, never input."""
    key_list, count_list = ", ".join(keys), ", ".join(counts)
    sums = ", ".join(f"sum({count})" for count in counts)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key])
        cursor.execute(
            f"""
            WITH gone AS (
                DELETE FROM {table}
                 WHERE id IN (
                       SELECT id FROM {table}
                        WHERE backend_pid <> 0
                          AND backend_pid NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
                          FOR UPDATE SKIP LOCKED)  -- a new backend that took a gone one's pid: next time
             RETURNING {key_list}, {count_list}
            ), folded AS (
                INSERT INTO {table} AS tally (backend_pid, {key_list}, {count_list})
                SELECT 0, {key_list}, {sums}
                  FROM gone
                 GROUP BY {key_list}
                HAVING {" OR ".join(f"sum({count}) <> 0" for count in counts)}
                 ORDER BY {key_list}
                    ON CONFLICT (backend_pid, {key_list}) DO UPDATE
                   SET {", ".join(f"{count} = tally.{count} + EXCLUDED.{count}" for count in counts)}
            )
            SELECT count(*) FROM gone
            """  # noqa: S608
        )
        (folded,) = cursor.fetchone()
    return int(folded)


def lock_conflict(error: BaseException) -> bool:
    """PostgreSQL aborted the transaction for a deadlock or a serialization conflict: trying the
    whole transaction again is safe and usually succeeds."""
    return isinstance(error.__cause__, DeadlockDetected | SerializationFailure)


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the PostgreSQL constraint an IntegrityError broke, if it names one."""
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
