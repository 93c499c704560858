"""Reconciliation with the Org-portal statement: every kind of difference, and bad files."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from ledger.selectors import ledger_verify
from mpesa.models import MpesaReceipt, ReceiptSource, StatementImport, StatementLine, StatementOutcome
from mpesa.services.statement import StatementFormatError, statement_import, statement_line_book
from tests.customers.factories import CustomerFactory
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

NAIROBI = ZoneInfo("Africa/Nairobi")


def confirm(trans_id, amount, account, when):
    payload = payloads.c2b(trans_id=trans_id, amount=amount, account=account, when=when)
    Client().post(reverse("c2b-confirmation", args=["test-webhook-token"]), data=payloads.body(payload),
                  content_type="application/json")  # fmt: skip


def statement_csv(rows):
    preamble = "Organisation Name,Kelly OS demo\nPaybill,600000\nTime Period:,01-11-2026 - 30-11-2026\n\n"
    header = (
        "Receipt No.,Completion Time,Initiation Time,Details,Transaction Status,Paid In,Withdrawn,Balance,"
        "Balance Confirmed,Reason Type,Other Party Info,Linked Transaction ID,A/C No.\n"
    )
    return ("\ufeff" + preamble + header + "".join(rows)).encode()


def row(
    receipt, when, amount, account="", status="Completed", details="Pay Bill from 254712345678 - JANE DOE"
):
    when_text = f"{when:%d-%m-%Y %H:%M:%S}"
    balance, payer = '"10,000.00"', "254712***678 - JANE DOE"
    cells = [
        receipt,
        when_text,
        "",
        details,
        status,
        f'"{amount}"',
        "",
        balance,
        "true",
        "",
        payer,
        "",
        account,
    ]
    return ",".join(cells) + "\n"


def test_every_kind_of_difference_and_booking_what_is_missing():
    customer = CustomerFactory()
    now = datetime.now(tz=NAIROBI).replace(microsecond=0)
    confirm("TKMATCH001", "1000", customer.code, now - timedelta(hours=3))
    confirm("TKDIFF0001", "500", customer.code, now - timedelta(hours=2))
    confirm("TKONLYOURS", "250", customer.code, now - timedelta(hours=1, minutes=30))
    content = statement_csv([
        row("TKMATCH001", now - timedelta(hours=3), "1,000.00", customer.code),
        row("tkdiff0001", now - timedelta(hours=2), "550.00", customer.code),
        row("TKMISSING1", now - timedelta(hours=1), "1,053.00", customer.code),
        row("TKCHARGE01", now - timedelta(minutes=30), "", details="Pay Bill Charge"),
        row("TKFAILED01", now - timedelta(minutes=20), "70.00", status="Failed"),
    ])  # fmt: skip
    statement = statement_import(file_name="november.csv", content=content, by=None)
    outcomes = dict(statement.lines.values_list("receipt_no", "outcome"))
    assert outcomes == {
        "TKMATCH001": StatementOutcome.MATCHED,
        "TKDIFF0001": StatementOutcome.AMOUNT_DIFFERS,
        "TKMISSING1": StatementOutcome.MISSING,
        "TKCHARGE01": StatementOutcome.NOT_A_PAYMENT,
        "TKFAILED01": StatementOutcome.NOT_A_PAYMENT,
        "TKONLYOURS": StatementOutcome.NOT_ON_STATEMENT,
    }
    missing = statement.lines.get(receipt_no="TKMISSING1")
    booked = statement_line_book(line=missing, by=None)
    assert booked.outcome == StatementOutcome.BOOKED
    receipt = MpesaReceipt.objects.get(trans_id="TKMISSING1")
    assert receipt.amount == Decimal("1053.00") and receipt.source == ReceiptSource.STATEMENT
    assert receipt.customer == customer
    with pytest.raises(Exception, match="nothing to book"):
        statement_line_book(line=booked, by=None)
    assert ledger_verify()["is_valid"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just,some,numbers\n1,2,3\n", "No header row"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
        (b"Receipt No.,Completion Time,Paid In\nX,Y,Z\n", "lacks transaction status"),
    ],
)
def test_bad_files_are_refused_naming_the_problem_and_nothing_is_kept(content, message):
    with pytest.raises(StatementFormatError, match=message):
        statement_import(file_name="bad.csv", content=content, by=None)
    assert not StatementImport.objects.exists()


def test_a_bad_row_names_its_row_and_nothing_is_half_imported():
    now = datetime.now(tz=NAIROBI)
    content = statement_csv([row("TKGOOD0001", now, "10.00"), row("TKBAD00001", now, "ten shillings")])
    with pytest.raises(StatementFormatError, match="Row 7: 'ten shillings' is not an amount"):
        statement_import(file_name="bad.csv", content=content, by=None)
    assert not StatementImport.objects.exists() and not StatementLine.objects.exists()


def test_the_command_and_the_admin_upload(tmp_path, admin_client, capsys):
    now = datetime.now(tz=NAIROBI)
    path = tmp_path / "statement.csv"
    path.write_bytes(statement_csv([row("TKCMD00001", now, "75.00", "nobody")]))
    call_command("mpesa_import_statement", str(path))
    assert "TKCMD00001: Missing from our books" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No header row"):
        bad = tmp_path / "bad.csv"
        bad.write_bytes(b"nothing here\n")
        call_command("mpesa_import_statement", str(bad))
    upload = reverse("admin:mpesa_statementimport_add")
    refused = admin_client.post(upload, {"file": SimpleUploadedFile("x.csv", b"nothing here\n")})
    assert "No header row" in refused.content.decode()
    line = StatementLine.objects.get()
    lines_url = reverse("admin:mpesa_statementline_changelist")
    assert "Missing from our books" in admin_client.get(lines_url).content.decode()
    admin_client.post(lines_url, {"action": "book_missing", "_selected_action": [line.pk]})
    assert MpesaReceipt.objects.get(trans_id="TKCMD00001").unallocated_amount == Decimal("75.00")
