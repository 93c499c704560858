"""Posting to the ledger. Python validates first so callers get a clear error; PostgreSQL is the
last line (migration 0002) and refuses anything that slips past."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from kellyos.audit import audit_record
from kellyos.db import statement_cursor, violated_constraint
from kellyos.money import ZERO, InvalidAmountError, to_kes
from ledger.exceptions import (
    EntryAlreadyReversedError,
    InvalidJournalEntryError,
    PeriodClosedError,
    TransactionRequiredError,
    UnknownAccountError,
)
from ledger.models import CauseKind, JournalEntry, PeriodLock
from ledger.selectors import posting_terms

# Clocks of application servers and the database differ a little; the database allows the same slack.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class JournalLineInput:
    """One side of a posting: an account code and either a debit or a credit."""

    account: str
    debit: Decimal | int | str = ZERO
    credit: Decimal | int | str = ZERO
    customer_id: int | None = None


def journal_entry_post(
    *,
    memo: str,
    lines: Sequence[JournalLineInput],
    cause_kind: str,
    cause_id: str = "",
    by: User | None = None,
    posted_at: datetime | None = None,
) -> JournalEntry:
    """Post a balanced journal entry. Must run inside the caller's transaction, which owns the
    business operation the entry belongs to (and commits, or rolls back, both together)."""
    return _entry_insert(
        memo=memo, lines=lines, cause_kind=cause_kind, cause_id=cause_id, by=by, posted_at=posted_at
    )


def journal_entry_reverse(
    *,
    entry: JournalEntry,
    reason: str,
    by: User | None,
    posted_at: datetime | None = None,
    memo: str | None = None,
) -> JournalEntry:
    """Post the mirror image of `entry`, so that together they net to zero. At most once per entry.
    `memo` says what the reversal means to the business (default: "Reversal of JE-n: ...")."""
    reason = reason.strip()
    if not reason:
        raise InvalidJournalEntryError("A reversal needs a reason.")
    with transaction.atomic():
        # The lock makes concurrent reversals of one entry queue; the second then sees the first.
        original = JournalEntry.objects.select_for_update().get(pk=entry.pk)
        if JournalEntry.objects.filter(reverses=original).exists():
            raise EntryAlreadyReversedError(f"Journal entry {original.pk} has already been reversed.")
        if posted_at is not None and posted_at < original.posted_at:
            raise InvalidJournalEntryError(
                f"A reversal cannot be dated before the entry it reverses ({original.posted_at:%Y-%m-%d})."
            )
        mirrored = [
            JournalLineInput(
                account=line.account.code, debit=line.credit, credit=line.debit, customer_id=line.customer_id
            )
            for line in original.lines.select_related("account")
        ]
        audit_record(
            action="journal.reverse", subject=f"journal entry JE-{original.pk}", by=by, reason=reason,
            summary=f"Reversed: {original.memo}",
        )  # fmt: skip
        try:
            with transaction.atomic():
                return _entry_insert(
                    memo=memo or f"Reversal of JE-{original.pk}: {original.memo}"[:255],
                    lines=mirrored,
                    cause_kind=CauseKind.REVERSAL,
                    cause_id=str(original.pk),
                    by=by,
                    posted_at=posted_at or max(timezone.now(), original.posted_at),
                    reverses=original,
                    reversal_reason=reason,
                )
        except IntegrityError as exc:
            if violated_constraint(exc) == "ledger_journalentry_one_reversal_per_entry":
                raise EntryAlreadyReversedError(
                    f"Journal entry {original.pk} has already been reversed."
                ) from exc
            raise


def _entry_insert(
    *,
    memo: str,
    lines: Sequence[JournalLineInput],
    cause_kind: str,
    cause_id: str,
    by: User | None,
    posted_at: datetime | None,
    reverses: JournalEntry | None = None,
    reversal_reason: str = "",
) -> JournalEntry:
    if not transaction.get_connection().in_atomic_block:
        raise TransactionRequiredError(
            "Post journal entries inside transaction.atomic(), with the business change."
        )
    if cause_kind not in CauseKind.values:
        raise InvalidJournalEntryError(f"Unknown cause kind {cause_kind!r}.")
    if not memo.strip():
        raise InvalidJournalEntryError("A journal entry needs a memo.")
    if posted_at is not None and timezone.is_naive(posted_at):
        raise InvalidJournalEntryError("posted_at must be timezone-aware.")
    if posted_at is not None and posted_at > timezone.now() + FUTURE_TOLERANCE:
        raise InvalidJournalEntryError(
            f"Journal entries cannot be dated in the future ({posted_at:%Y-%m-%d %H:%M})."
        )
    amounts = _validated_amounts(lines)
    terms = posting_terms(sorted({line.account for line in lines}))
    lock, accounts = terms.period_lock, terms.accounts
    if lock is not None and (posted_at or timezone.now()) < lock.boundary:
        raise PeriodClosedError(f"The books are closed through {lock.locked_through}; post on a later date.")
    for line in lines:
        account = accounts.get(line.account)
        if account is None:
            raise UnknownAccountError(f"No account with code {line.account!r}.")
        # A closed account takes no new business, but what was posted to it can still be undone.
        if not account.is_active and reverses is None:
            raise InvalidJournalEntryError(f"Account {account} is closed to postings.")

    entry = JournalEntry(
        memo=memo.strip(),
        cause_kind=cause_kind,
        cause_id=cause_id,
        posted_by=by,
        posted_at=posted_at or timezone.now(),
        reverses=reverses,
        reversal_reason=reversal_reason,
        recorded_at=timezone.now(),
    )
    # Two hand-written statements: every payment posts an entry, and the ORM's insert compilation
    # cost more than the database's work. (Lines need the entry committed to the statement before
    # them: their triggers read it.)
    cursor = statement_cursor()
    cursor.execute(
        "INSERT INTO ledger_journalentry (posted_at, memo, cause_kind, cause_id, posted_by_id, "
        "reverses_id, reversal_reason, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [entry.posted_at, entry.memo, cause_kind, cause_id, entry.posted_by_id, entry.reverses_id,
         reversal_reason, entry.recorded_at],
    )  # fmt: skip
    (entry.pk,) = cursor.fetchone()
    cursor.execute(
        "INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, customer_id, posted_at) "
        "SELECT %s, line.*, %s FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::bigint[]) "
        "AS line(account_id, debit, credit, customer_id)",
        [entry.pk, entry.posted_at, [accounts[line.account].pk for line in lines],
         [debit for debit, _ in amounts], [credit for _, credit in amounts],
         [line.customer_id for line in lines]],
    )  # fmt: skip
    entry._state.adding = False
    entry._state.db = connection.alias
    return entry


def _validated_amounts(lines: Sequence[JournalLineInput]) -> list[tuple[Decimal, Decimal]]:
    if len(lines) < 2:
        raise InvalidJournalEntryError("A journal entry needs at least two lines.")
    amounts = []
    for number, line in enumerate(lines, start=1):
        try:
            debit, credit = to_kes(line.debit), to_kes(line.credit)
        except InvalidAmountError as exc:
            raise InvalidJournalEntryError(f"Line {number}: {exc}") from exc
        if debit < 0 or credit < 0:
            raise InvalidJournalEntryError(f"Line {number}: amounts must be positive.")
        if (debit > 0) == (credit > 0):
            raise InvalidJournalEntryError(
                f"Line {number}: give either a debit or a credit, not both or neither."
            )
        amounts.append((debit, credit))
    total_debit = sum((d for d, _ in amounts), ZERO)
    total_credit = sum((c for _, c in amounts), ZERO)
    if total_debit != total_credit:
        raise InvalidJournalEntryError(f"Unbalanced entry: debits {total_debit} <> credits {total_credit}.")
    return amounts


def period_lock_set(*, locked_through: date, reason: str, by: User | None) -> PeriodLock:
    """Close the books through a business day (or move the lock: the history keeps every change)."""
    reason = reason.strip()
    if not reason:
        raise InvalidJournalEntryError("Say why the period is being closed (or reopened).")
    if locked_through >= timezone.localdate():
        raise InvalidJournalEntryError("Only days that have ended can be closed.")
    boundary = datetime.combine(
        locked_through + timedelta(days=1), time.min, tzinfo=ZoneInfo(settings.TIME_ZONE)
    )
    with transaction.atomic():
        audit_record(
            action="period.lock",
            subject="books",
            by=by,
            reason=reason,
            summary=f"Books closed through {locked_through}.",
        )
        return PeriodLock.objects.create(
            locked_through=locked_through, boundary=boundary, reason=reason, set_by=by
        )
