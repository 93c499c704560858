"""Reports for accountants and auditors, each a table (columns and rows) that the API returns as
JSON or CSV. Every report states the period lock in force."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from invoices.selectors import AGING_BUCKETS, invoice_aging_by_customer
from kellyos.money import ZERO
from ledger.models import Account
from ledger.selectors import (
    account_balance,
    general_ledger,
    ledger_verify,
    period_lock_current,
    trial_balance,
)
from mpesa.models import MpesaReceipt
from mpesa.selectors import COLLECTION_KINDS, receipt_collections_by_day


class ReportError(ValueError):
    pass


@dataclass
class Report:
    name: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def report_build(kind: str, *, start: date, end: date, account: str | None) -> Report:
    builders = {
        "trial_balance": lambda: _trial_balance(end),
        "balance": lambda: _balances(end),
        "ledger": lambda: _ledger(account, start, end),
        "verify": _verify,
        "aged_receivables": lambda: _aged_receivables(end),
        "collections": lambda: _collections(start, end),
        "unallocated": _unallocated,
    }
    if kind not in builders:
        raise ReportError(f"type must be one of {', '.join(builders)}.")
    report = builders[kind]()
    lock = period_lock_current()
    report.meta.update(
        {"from": start, "to": end, "period_locked_through": lock.locked_through if lock else None}
    )
    return report


def _trial_balance(end: date) -> Report:
    tb = trial_balance(as_of=end)
    report = Report("trial_balance", ["code", "account", "type", "debit", "credit"])
    report.rows = [[r.code, r.name, r.type, r.debit, r.credit] for r in tb.rows]
    report.rows.append(["", "Total", "", tb.total_debit, tb.total_credit])
    report.meta["balanced"] = tb.is_balanced
    return report


def _balances(end: date) -> Report:
    report = Report("balance", ["code", "account", "type", "balance"])
    report.rows = [
        [a.code, a.name, a.type, account_balance(a.code, as_of=end)] for a in Account.objects.all()
    ]
    return report


def _ledger(account: str | None, start: date, end: date) -> Report:
    if not account:
        raise ReportError("The ledger report needs account=<code>.")
    gl = general_ledger(account=account, start=start, end=end)
    report = Report("ledger", ["date", "entry", "memo", "debit", "credit", "balance"])
    report.rows = [[start, "", "Opening balance", "", "", gl.opening_balance]]
    report.rows += [
        [line.posted_at, line.entry_id, line.memo, line.debit, line.credit, line.balance] for line in gl.lines
    ]
    report.rows.append([end, "", "Closing balance", "", "", gl.closing_balance])
    return report


def _verify() -> Report:
    result = ledger_verify()
    report = Report("verify", ["problem"], [[error] for error in result["errors"]])
    report.meta["is_valid"] = result["is_valid"]
    return report


def _aged_receivables(as_of: date) -> Report:
    """Open invoice balances by how long past due they are on `as_of`, per customer and in total."""
    aging = invoice_aging_by_customer(as_of=as_of)
    report = Report("aged_receivables", ["customer", "name", *AGING_BUCKETS, "total"], aging.rows)
    report.rows.append(["", "Total", *aging.totals])
    report.meta["chart"] = {
        key: str(value) for key, value in zip(AGING_BUCKETS, aging.totals[:-1], strict=True)
    }
    return report


def _collections(start: date, end: date) -> Report:
    """M-Pesa receipts per day and per kind of reference they were booked to (refunded ones apart)."""
    days, total = receipt_collections_by_day(start=start, end=end)
    report = Report("collections", ["day", *COLLECTION_KINDS, "total"])
    for day, amounts in days:
        report.rows.append([day, *amounts.values(), sum(amounts.values(), ZERO)])
    report.meta["total"] = total
    return report


def _unallocated() -> Report:
    report = Report(
        "unallocated", ["receipt", "time", "amount", "in_suspense", "account_typed", "reason", "detail"]
    )
    waiting = MpesaReceipt.objects.filter(unallocated_amount__gt=0, payment__isnull=True).order_by(
        "trans_time"
    )
    report.rows = [
        [r.trans_id, r.trans_time, r.amount, r.unallocated_amount, r.bill_ref_number, r.unallocated_reason,
         r.unallocated_detail]
        for r in waiting
    ]  # fmt: skip
    return report
