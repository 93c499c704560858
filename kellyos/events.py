"""Live updates: committed changes announced to every server process through PostgreSQL
LISTEN/NOTIFY, and streamed to browsers as Server-Sent Events.

`event_publish` runs inside the business transaction: the event row and the NOTIFY commit (or
vanish) with the change. A browser that reconnects sends the last event id it saw and is replayed
what it missed; ids are taken before commit, so the replay starts a little earlier and the browser
skips ids it has already shown."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.utils import timezone

from kellyos.db import statement_cursor
from kellyos.models import Event
from kellyos.slots import ThreadSlots

CHANNEL = "kellyos_events"
REPLAY_OVERLAP = timedelta(seconds=30)
HEARTBEAT_SECONDS = 15.0
REPLAY_LIMIT = 500
# A browser turned away reconnects after this many milliseconds, spread so they do not come back at once.
BUSY_RETRY_MS = (10_000, 20_000)


# Live-update streams this process holds (kellyos.slots).
stream_slots = ThreadSlots("EVENTS_STREAMS_PER_PROCESS", reason="live_screen_turned_away")


class HeldStream:
    """A stream's lines, holding one of the process's slots until the server closes the response
    (at the stream's end or when the browser leaves), even if it never started."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._held = True

    def __iter__(self) -> HeldStream:
        return self

    def __next__(self) -> str:
        return next(self._lines)

    def close(self) -> None:
        if self._held:
            self._held = False
            stream_slots.give_back()
        close = getattr(self._lines, "close", None)
        if close is not None:
            close()


def event_stream_busy() -> str:
    """What a browser is sent when this process holds all the streams it takes: reconnect later."""
    retry = random.randint(*BUSY_RETRY_MS)  # noqa: S311 - spreading reconnections, not a secret
    return f"retry: {retry}\n: busy: this server holds all the live screens it takes\n\n"


@dataclass
class _Gathered:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    writes: list[tuple[str, list[Any]]] = field(default_factory=list)


# What an `events_gathered` block is holding for its end; None outside one.
_gathered: ContextVar[_Gathered | None] = ContextVar("gathered_events", default=None)


def event_publish(*, kind: str, payload: dict[str, Any]) -> None:
    events_publish(events=[(kind, payload)])


def events_publish(*, events: list[tuple[str, dict[str, Any]]]) -> None:
    """Store the events and announce each one's id, in one statement: this runs on every payment.
    Inside an `events_gathered` block they wait for the block's end."""
    gathered = _gathered.get()
    if gathered is not None:
        gathered.events.extend(events)
        return
    _gathered_store(_Gathered(events=events))


def write_with_events(sql: str, params: list[Any]) -> None:
    """Run a data-modifying statement (INSERT or UPDATE, nothing returned) now, or, inside an
    `events_gathered` block, in the statement that stores the block's events at its end. For the
    writes that close a booking: its audit entry, its callback's outcome. It then runs as a WITH
    clause beside the others: it sees none of their changes, and no two may change the same row."""
    gathered = _gathered.get()
    if gathered is None:
        statement_cursor().execute(sql, params)
    else:
        gathered.writes.append((sql, params))


@contextmanager
def events_gathered() -> Iterator[None]:
    """Publish every event of the block, and run every `write_with_events` of it, in one statement at
    its end, still inside the caller's transaction: a booking announces its payment, invoices and
    customer from three services, and each statement on that path costs more than the rows it
    writes. An exception leaving the block drops what it gathered (the transaction, or savepoint,
    they belong to is rolling back). Savepoints inside are not followed: code inside must not carry
    on after catching the failure of an inner atomic block, or that block's events and writes would
    still go out. Inside another such block, what the inner one gathered goes to the outer one when
    it ends without an exception, and the outer one publishes."""
    outer = _gathered.get()
    gathered = _Gathered()
    token = _gathered.set(gathered)
    try:
        yield
    finally:
        _gathered.reset(token)
    if outer is None:
        _gathered_store(gathered)
    else:
        outer.events.extend(gathered.events)
        outer.writes.extend(gathered.writes)


def _gathered_store(gathered: _Gathered) -> None:
    if not gathered.events and not gathered.writes:
        return
    clauses = [f"write{number} AS ({sql})" for number, (sql, _) in enumerate(gathered.writes)]
    params: list[Any] = [param for _, write_params in gathered.writes for param in write_params]
    if gathered.events:
        now = timezone.now()
        rows = ", ".join(["(%s, %s::jsonb, %s)"] * len(gathered.events))
        for kind, payload in gathered.events:
            params += [kind, json.dumps(payload, cls=DjangoJSONEncoder), now]  # Decimals, datetimes as text
        clauses.append(
            f"stored AS (INSERT INTO {Event._meta.db_table} (kind, payload, created_at) VALUES {rows} "  # noqa: S608
            "RETURNING id)"
        )
        last = "SELECT pg_notify(%s, id::text) FROM stored"
        params.append(CHANNEL)
    else:
        last = "SELECT 1"  # a WITH clause that changes rows runs to its end even when nothing reads it
    statement_cursor().execute(f"WITH {', '.join(clauses)} {last}", params)


def events_prune(*, older_than: timedelta, batch: int = 10_000) -> int:
    """Delete events older than `older_than`: they exist for browsers catching up after a reconnect
    (seconds to minutes), not as history (the audit trail and the ledger are that). In batches, so no
    single statement holds many rows while payments publish new ones. Returns how many went."""
    if older_than < REPLAY_OVERLAP:
        raise ValueError(f"Events must be kept at least {REPLAY_OVERLAP} for reconnecting browsers.")
    cutoff = timezone.now() - older_than
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                f"DELETE FROM {Event._meta.db_table} WHERE id IN (SELECT id FROM {Event._meta.db_table} "  # noqa: S608
                "WHERE created_at < %s ORDER BY id LIMIT %s)",
                [cutoff, batch],
            )
            removed: int = cursor.rowcount
            deleted += removed
            if removed < batch:
                return deleted


def event_latest_id() -> int:
    """Pages write this into their EventSource URL, so nothing committed after the page was drawn
    and before the stream opened is missed."""
    return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def event_stream(*, last_event_id: int | None, wants: dict[str, str], max_seconds: float) -> Iterator[str]:
    """SSE lines: first what was missed since `last_event_id`, then live events, with heartbeats,
    for at most `max_seconds` (the browser reconnects by itself and resumes)."""
    try:
        with event_listener_connect() as listener:
            # The newest id now: a browser that reconnects before any event arrives still resumes here.
            newest = event_latest_id()
            yield f"retry: 2000\nid: {max(newest, last_event_id or 0)}\n\n"
            if last_event_id is not None:
                for event in _replay(last_event_id, wants):
                    yield _sse(event)
            deadline = time.monotonic() + max_seconds
            while (remaining := deadline - time.monotonic()) > 0:
                wait = min(HEARTBEAT_SECONDS, remaining)
                # Wake on the first notification, then take whatever else is already waiting.
                arrived = list(listener.notifies(timeout=wait, stop_after=1))
                if arrived:
                    arrived += list(listener.notifies(timeout=0.0))
                notified = [int(n.payload) for n in arrived]
                if not notified:
                    yield ": still here\n\n"
                    continue
                for event in Event.objects.filter(pk__in=notified).order_by("pk"):
                    if _wanted(event, wants):
                        yield _sse(event)
    finally:
        connection.close()  # this thread's Django connection (event rows), also when the browser left


def event_listener_connect() -> psycopg.Connection[Any]:
    """A connection of its own, already listening: to `EVENTS_DATABASE_URL` when set, since behind
    PgBouncer in transaction mode a LISTEN would stay on a server connection others then borrow, and
    nothing would be heard. NOTIFY is per database, so it joins the database the application's own
    connection is in unless the URL names one."""
    direct = settings.EVENTS_DATABASE
    params: dict[str, Any]
    if direct is None:
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
    else:
        params = {
            "host": direct["HOST"],
            "port": direct["PORT"],
            "user": direct["USER"],
            "password": direct["PASSWORD"],
            "dbname": direct["NAME"] or _current_database(),
            **direct.get("OPTIONS", {}),
        }
        params = {key: value for key, value in params.items() if value not in ("", None)}
        # An unreachable server must not hold a gunicorn thread for the operating system's TCP timeout.
        params.setdefault("connect_timeout", 10)
    listener = psycopg.connect(**params, autocommit=True)
    try:
        listener.execute(f"LISTEN {CHANNEL}")
    except BaseException:
        listener.close()
        raise
    return listener


def _current_database() -> str:
    """The real database name: through PgBouncer, DATABASE_URL names PgBouncer's alias for it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        return str(cursor.fetchone()[0])


def _replay(last_event_id: int, wants: dict[str, str]) -> list[Event]:
    """What a reconnecting browser missed: newer events, and older ids that committed late (ids are
    taken before commit). Bounded, and filtered in the database."""
    events = Event.objects.filter(**{f"payload__{key}": value for key, value in wants.items()})
    last = Event.objects.filter(pk=last_event_id).values_list("created_at", flat=True).first()
    late = (
        events.filter(pk__lte=last_event_id, created_at__gte=last - REPLAY_OVERLAP) if last else events.none()
    )
    return list((events.filter(pk__gt=last_event_id) | late).order_by("pk")[:REPLAY_LIMIT])


def _wanted(event: Event, wants: dict[str, str]) -> bool:
    return all(str(event.payload.get(key)) == value for key, value in wants.items())


def _sse(event: Event) -> str:
    return f"id: {event.pk}\nevent: {event.kind}\ndata: {json.dumps(event.payload)}\n\n"
