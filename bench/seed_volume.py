"""Build a database at the volume the read targets are set for, quickly, with the ledger triggers on.

    python bench/seed_volume.py [--scale 1.0] [--database-url URL] [--days 730] [--workers 2]

At --scale 1.0: 100,000 customers, 1,000,000 M-Pesa receipts (each with its confirmation in the
webhook log), about 330,000 invoices and 2.7 million journal lines, spread over the last two years.
--scale 0.01 builds a hundredth of it in seconds. The database is created (or emptied: it must be a
throwaway one) and migrated first.

The data is what the services would have written, so `manage.py ledger_verify` finds it valid:
- every invoice is posted DR 1200 / CR 4000 for its customer on its issue day, numbered
  INV-YYYYMMDD-NNNN per day with the day counters in step;
- every receipt that names an invoice or a customer is a payment allocated to one invoice
  (DR 1010 / CR 1200): invoices older than 60 days are paid in full, newer ones are unpaid or part paid;
- 2% of receipts name nothing known and sit in 2200 suspense (DR 1010 / CR 2200);
- about one customer in a thousand is a wholesaler with 300 invoices (the busy statements).

Nothing is bypassed. Rows are generated inside PostgreSQL (INSERT ... SELECT from generate_series
into unlogged staging tables), then written to the real tables in a few large statements. Journal
entries and their lines go in chunks, one transaction per chunk, so every ledger trigger runs as for
the application: the entry stamp (creating transaction, no future date, no closed period), the line
preparation, the balance stripes, and at each commit the deferred balanced-entry checks. Only
synchronous_commit is relaxed, for this session. The list and search indexes that enforce nothing
(trigram and plain b-tree ones) are dropped before the rows go in and built again from their own
definitions afterwards, so the schema ends exactly as `migrate` made it; keys, unique indexes and the
index the balanced-entry checks read stay throughout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SUSPENSE_SHARE = 0.02
WHOLESALER_EVERY = 1000
WHOLESALER_INVOICES = 300
OPEN_DAYS = 60  # invoices issued in the last 60 days are still unpaid or part paid
ENTRIES_PER_TRANSACTION = 25_000
DOCUMENTS_PER_STATEMENT = 100_000
# Every table the seed writes: their list and search indexes are built once, after the rows are in.
WRITTEN_TABLES = ["customers_customer", "ledger_journalentry", "ledger_journalline",
                  "invoices_invoicenumbersequence", "invoices_invoice", "invoices_invoiceline",
                  "invoices_payment", "invoices_allocation", "mpesa_mpesareceipt",
                  "mpesa_webhooklog"]  # fmt: skip
# Kept while writing: the balanced-entry checks at each commit find an entry's lines through it.
INDEXES_THE_CHECKS_READ = ["ledger_line_entry_idx"]
SHORTCODE = "600984"
FIRST_NAMES = ["Wanjiku", "Otieno", "Achieng", "Kamau", "Njeri", "Mwangi", "Wambui", "Kiprop", "Chebet",
               "Omondi", "Akinyi", "Mutua", "Nyambura", "Kibet", "Adhiambo", "Njoroge", "Wairimu",
               "Ochieng", "Jepkosgei", "Muthoni"]  # fmt: skip
LAST_NAMES = ["Hardware", "Stores", "Traders", "Enterprises", "Supplies", "Agrovet", "Wholesalers",
              "Pharmacy", "Motors", "Bakery", "Butchery", "Salon", "Electricals", "Textiles",
              "Hotel", "Academy", "Farm", "Logistics", "Builders", "Kiosk", "Dairy", "Pharma",
              "Garage", "Cafe", "Outfitters"]  # fmt: skip


ENTRIES_SQL = """
INSERT INTO ledger_journalentry (id, posted_at, memo, cause_kind, cause_id, reversal_reason,
                                 recorded_at)
SELECT i.entry_id, i.issue_date::timestamp AT TIME ZONE 'Africa/Nairobi',
       'Invoice ' || i.number || ' to ' || c.code || ' ' || c.name, 'invoice', i.number, '',
       i.issue_date::timestamp AT TIME ZONE 'Africa/Nairobi'
  FROM seed_invoice i JOIN seed_customer c USING (g)
 WHERE i.entry_id BETWEEN %(low)s AND %(high)s
UNION ALL
SELECT r.entry_id, r.trans_time,
       CASE WHEN r.invoice_id IS NULL
            THEN 'M-Pesa ' || r.trans_id || ' held in suspense: Account number ''ACC'
                 || r.id || ''' matches nothing.'
            ELSE 'Payment ' || r.trans_id || ' from ' || c.code || ' ' || c.name || ' (ref '''
                 || CASE WHEN r.names_invoice THEN r.number ELSE c.code END || ''')' END,
       'receipt', r.trans_id, '', r.trans_time
  FROM seed_receipt r LEFT JOIN seed_customer c USING (g)
 WHERE r.entry_id BETWEEN %(low)s AND %(high)s
 ORDER BY 1
"""

LINES_SQL = """
INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, customer_id, posted_at)
SELECT entry_id, account_id, debit, credit, customer_id, posted_at FROM (
    SELECT i.entry_id, 1 AS side, %(ar)s AS account_id, i.total AS debit, 0 AS credit,
           c.id AS customer_id, i.issue_date::timestamp AT TIME ZONE 'Africa/Nairobi' AS posted_at
      FROM seed_invoice i JOIN seed_customer c USING (g)
     WHERE i.entry_id BETWEEN %(low)s AND %(high)s
    UNION ALL
    SELECT i.entry_id, 2, %(sales)s, 0, i.total, NULL, i.issue_date::timestamp AT TIME ZONE 'Africa/Nairobi'
      FROM seed_invoice i WHERE i.entry_id BETWEEN %(low)s AND %(high)s
    UNION ALL
    SELECT r.entry_id, 1, %(cash)s, r.amount, 0, NULL, r.trans_time
      FROM seed_receipt r WHERE r.entry_id BETWEEN %(low)s AND %(high)s
    UNION ALL
    SELECT r.entry_id, 2, CASE WHEN r.invoice_id IS NULL THEN %(suspense)s ELSE %(ar)s END,
           0, r.amount, c.id, r.trans_time
      FROM seed_receipt r LEFT JOIN seed_customer c USING (g)
     WHERE r.entry_id BETWEEN %(low)s AND %(high)s
) l ORDER BY entry_id, side
"""

SEQUENCES_SQL = """
INSERT INTO invoices_invoicenumbersequence (day, last_number)
SELECT issue_date, count(*) FROM seed_invoice GROUP BY issue_date
"""

INVOICES_SQL = """
INSERT INTO invoices_invoice (id, number, customer_id, issue_date, due_date, total, amount_paid,
                              status, journal_entry_id, created_at, void_reason)
SELECT i.id, i.number, c.id, i.issue_date, i.issue_date + 30, i.total, i.amount_paid, i.status,
       i.entry_id, i.issue_date::timestamp AT TIME ZONE 'Africa/Nairobi', ''
  FROM seed_invoice i JOIN seed_customer c USING (g)
 WHERE i.id BETWEEN %(low)s AND %(high)s ORDER BY i.id
"""

INVOICE_LINES_SQL = """
INSERT INTO invoices_invoiceline (invoice_id, description, quantity, unit_price, line_total)
SELECT id, 'Supplies for ' || to_char(issue_date, 'Mon YYYY'), 1, total, total
  FROM seed_invoice WHERE id BETWEEN %(low)s AND %(high)s ORDER BY id
"""

PAYMENTS_SQL = """
INSERT INTO invoices_payment (id, source, source_id, amount, reference, received_at, customer_id,
                              invoice_id, allocated_amount, credit_amount, journal_entry_id,
                              created_at, reallocation_reason, refund_reason)
SELECT r.id, 'mpesa', r.trans_id, r.amount, CASE WHEN r.names_invoice THEN r.number ELSE c.code END,
       r.trans_time, c.id, CASE WHEN r.names_invoice THEN r.invoice_id END, r.amount, 0,
       r.entry_id, r.trans_time, '', ''
  FROM seed_receipt r JOIN seed_customer c USING (g)
 WHERE r.id BETWEEN %(low)s AND %(high)s ORDER BY r.id
"""

ALLOCATIONS_SQL = """
INSERT INTO invoices_allocation (kind, payment_id, invoice_id, amount, journal_entry_id, created_at)
SELECT 'PAYMENT', r.id, r.invoice_id, r.amount, r.entry_id, r.trans_time
  FROM seed_receipt r WHERE r.invoice_id IS NOT NULL AND r.id BETWEEN %(low)s AND %(high)s ORDER BY r.id
"""

RECEIPTS_SQL = """
INSERT INTO mpesa_mpesareceipt (
    id, trans_id, trans_time, amount, business_short_code, bill_ref_number, invoice_number,
    transaction_type, third_party_trans_id, msisdn, payer_name, source, status,
    unallocated_reason, unallocated_detail, customer_id, payment_id, unallocated_amount,
    suspense_entry_id, recorded_at)
SELECT r.id, r.trans_id, r.trans_time, r.amount, %(shortcode)s,
       CASE WHEN r.invoice_id IS NULL THEN 'ACC' || r.id
            WHEN r.names_invoice THEN r.number ELSE c.code END,
       '', 'Pay Bill', '',
       CASE WHEN c.phone IS NULL THEN '2547 ***** ' || lpad((r.id %% 1000)::text, 3, '0')
            ELSE left(c.phone, 6) || '***' || right(c.phone, 3) END,
       coalesce(split_part(c.name, ' ', 1), 'Payer ' || r.id), 'C2B',
       CASE WHEN r.invoice_id IS NULL THEN 'UNALLOCATED' ELSE 'ALLOCATED' END,
       CASE WHEN r.invoice_id IS NULL THEN 'UNKNOWN_REFERENCE' ELSE '' END,
       CASE WHEN r.invoice_id IS NULL THEN 'Account number ''ACC' || r.id || ''' matches nothing.'
            ELSE '' END,
       c.id, CASE WHEN r.invoice_id IS NOT NULL THEN r.id END,
       CASE WHEN r.invoice_id IS NULL THEN r.amount ELSE 0 END,
       CASE WHEN r.invoice_id IS NULL THEN r.entry_id END,
       r.trans_time + interval '1 second'
  FROM seed_receipt r LEFT JOIN seed_customer c USING (g)
 WHERE r.id BETWEEN %(low)s AND %(high)s ORDER BY r.id
"""

WEBHOOK_LOGS_SQL = """
INSERT INTO mpesa_webhooklog (id, kind, received_at, source_ip, headers, body, status, detail,
                              trans_id, receipt_id, attempts, processed_at, lock_conflict_retries)
SELECT r.id, 'c2b_confirmation', r.trans_time + interval '1 second', '196.201.214.200',
       '{"Content-Type": "application/json"}'::jsonb,
       json_build_object(
           'TransactionType', 'Pay Bill', 'TransID', m.trans_id,
           'TransTime', to_char(m.trans_time AT TIME ZONE 'Africa/Nairobi', 'YYYYMMDDHH24MISS'),
           'TransAmount', m.amount::text, 'BusinessShortCode', m.business_short_code,
           'BillRefNumber', m.bill_ref_number, 'InvoiceNumber', '', 'OrgAccountBalance', '',
           'ThirdPartyTransID', '', 'MSISDN', m.msisdn, 'FirstName', m.payer_name)::text,
       'PROCESSED', 'Booked: ' || CASE WHEN m.status = 'ALLOCATED' THEN 'Allocated to invoices.'
                                       ELSE 'Unallocated (suspense).' END,
       m.trans_id, m.id, 1, r.trans_time + interval '1 second', 0
  FROM seed_receipt r JOIN mpesa_mpesareceipt m ON m.id = r.id
 WHERE r.id BETWEEN %(low)s AND %(high)s ORDER BY r.id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 10^6 receipts, 10^5 customers")
    parser.add_argument(
        "--database-url", default=None, help="default: $VOLUME_DATABASE_URL or <DATABASE_URL>_volume"
    )
    parser.add_argument("--days", type=int, default=730, help="how far back the history goes")
    parser.add_argument("--workers", type=int, default=2, help="connections writing at once")
    args = parser.parse_args()
    args.database_url = args.database_url or volume_database_url()
    customers = max(int(100_000 * args.scale), 10)
    receipts = max(int(1_000_000 * args.scale), 100)

    started = time.perf_counter()
    recreate_and_migrate(args.database_url)
    step(started, "database created and migrated")
    with psycopg.connect(args.database_url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SELECT setseed(0.42)")
        plan(conn, customers=customers, receipts=receipts, days=args.days)
        step(started, "plan staged")
        set_aside = indexes_set_aside(conn)
        step(started, f"{len(set_aside)} list and search indexes set aside until the rows are in")
        write_customers(conn)
        step(started, "customers")
        write_ledger(args.database_url, workers=args.workers, started=started)
        write_documents(args.database_url, workers=args.workers, started=started)
        step(started, "invoices, payments, allocations, receipts, webhook log")
        indexes_rebuild(args.database_url, set_aside, workers=args.workers, started=started)
        finish(conn, args.database_url, workers=args.workers, started=started)
        step(started, "sequences reset, staging dropped, VACUUM ANALYZE")
        counts = conn.execute(
            """
            SELECT (SELECT count(*) FROM customers_customer), (SELECT count(*) FROM invoices_invoice),
                   (SELECT count(*) FROM invoices_payment), (SELECT count(*) FROM mpesa_mpesareceipt),
                   (SELECT count(*) FROM mpesa_webhooklog), (SELECT count(*) FROM ledger_journalentry),
                   (SELECT count(*) FROM ledger_journalline),
                   pg_size_pretty(pg_database_size(current_database()))
            """
        ).fetchone()
    assert counts is not None
    print(
        "customers {:,}  invoices {:,}  payments {:,}  receipts {:,}  webhook logs {:,}  "
        "journal entries {:,}  journal lines {:,}  database {}".format(*counts)
    )
    print(f"seeded in {time.perf_counter() - started:.1f} s")


def volume_database_url() -> str:
    """VOLUME_DATABASE_URL, else DATABASE_URL's server with `<name>_volume`: never the working database."""
    if os.environ.get("VOLUME_DATABASE_URL"):
        return os.environ["VOLUME_DATABASE_URL"]
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("Set DATABASE_URL (or VOLUME_DATABASE_URL): the volume database needs a PostgreSQL server.")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + "_volume"))


def step(started: float, what: str) -> None:
    print(f"{time.perf_counter() - started:8.1f} s  {what}", flush=True)


def recreate_and_migrate(url: str) -> None:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in {"postgres", "template0", "template1"}:
        sys.exit(f"refusing to recreate database {name!r}: give a throwaway one")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "true"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )


def plan(conn: psycopg.Connection, *, customers: int, receipts: int, days: int) -> None:
    """Stage every row to write, keyed by the ids they will have (the database is fresh)."""
    conn.execute(
        """
        CREATE UNLOGGED TABLE seed_customer AS
        SELECT g,
               (%(first)s::text[])[1 + g %% 20] || ' ' || (%(last)s::text[])[1 + (g / 20) %% 25] || ' ' || g
                   AS name,
               '2547' || lpad((g * 7919 %% 100000000)::text, 8, '0') AS phone,
               CASE WHEN g %% %(every)s = 0 THEN %(wholesale)s ELSE 1 + g %% 5 END AS invoice_count,
               now() - make_interval(days => %(days)s + 30)
                   + (g::float / %(customers)s) * make_interval(days => %(days)s) AS created_at
          FROM generate_series(1, %(customers)s) g
        """,
        {"first": FIRST_NAMES, "last": LAST_NAMES, "every": WHOLESALER_EVERY,
         "wholesale": WHOLESALER_INVOICES, "customers": customers, "days": days},
    )  # fmt: skip
    # Invoices: a customer's invoices spread evenly over the period, each with a random day in its slot.
    conn.execute(
        """
        CREATE UNLOGGED TABLE seed_invoice AS
        SELECT id, g, j, issue_date, total,
               'INV-' || to_char(issue_date, 'YYYYMMDD') || '-' || lpad(day_number::text, 4, '0') AS number,
               CASE WHEN issue_date < current_date - %(open_days)s THEN 'PAID'
                    WHEN random() < 0.4 THEN 'UNPAID' ELSE 'PARTIALLY_PAID' END AS status,
               0 AS installments, 0::numeric(14, 2) AS amount_paid
          FROM (
            SELECT *, row_number() OVER (ORDER BY issue_date, g, j) AS id,
                   row_number() OVER (PARTITION BY issue_date ORDER BY g, j) AS day_number
              FROM (
                SELECT c.g, j,
                       current_date - %(days)s + ((j - 1) * %(days)s / c.invoice_count)
                           + floor(random() * greatest(%(days)s / c.invoice_count, 1))::int AS issue_date,
                       (500 + 100 * floor(random() * 200))::numeric(14, 2) AS total
                  FROM seed_customer c, generate_series(1, c.invoice_count) j
              ) drawn
          ) numbered;
        ALTER TABLE seed_invoice ADD PRIMARY KEY (id);
        """,
        {"days": days - 1, "open_days": OPEN_DAYS},
    )
    # Receipts: the payers' share spread over the invoices that are not unpaid, as evenly as it goes.
    payable = conn.execute("SELECT count(*) FROM seed_invoice WHERE status <> 'UNPAID'").fetchone()[0]  # type: ignore[index]
    payments = receipts - int(receipts * SUSPENSE_SHARE)
    per_invoice, extra = divmod(payments, payable)
    conn.execute(
        """
        UPDATE seed_invoice i
           SET installments = CASE WHEN status = 'UNPAID' THEN 0
                                   ELSE %(per)s + CASE WHEN x.k <= %(extra)s THEN 1 ELSE 0 END END
          FROM (SELECT id, row_number() OVER (ORDER BY (status = 'UNPAID'), random()) k FROM seed_invoice) x
         WHERE x.id = i.id;
        -- A part paid invoice gets installments that leave something owing; a paid one is paid off.
        UPDATE seed_invoice SET status = 'UNPAID' WHERE installments = 0;
        UPDATE seed_invoice
           SET amount_paid = CASE status
                   WHEN 'PAID' THEN total
                   WHEN 'PARTIALLY_PAID' THEN installments * floor(total / (installments + 1))
                   ELSE 0 END;
        CREATE UNLOGGED TABLE seed_receipt AS
        -- A multiplicative hash is a bijection modulo 2^32, so the receipt numbers are unique.
        SELECT drawn.*, 'SK' || upper(lpad(to_hex((id * 2654435761) %% 4294967296), 8, '0')) AS trans_id
          FROM (
            SELECT row_number() OVER (ORDER BY trans_time, invoice_id, m) AS id, * FROM (
                SELECT i.id AS invoice_id, i.g, i.number, m,
                       CASE WHEN i.status = 'PAID' AND m = i.installments
                                THEN i.total - (m - 1) * floor(i.total / m)
                            WHEN i.status = 'PAID' THEN floor(i.total / i.installments)
                            ELSE floor(i.total / (i.installments + 1)) END::numeric(14, 2) AS amount,
                       least(
                           (i.issue_date + time '09:00') AT TIME ZONE 'Africa/Nairobi'
                               + ((m - 1 + random()) / i.installments)
                                 * CASE WHEN i.status = 'PAID' THEN interval '28 days'
                                        ELSE least(interval '28 days', now() - i.issue_date::timestamp) END,
                           now() - interval '1 minute'
                       ) AS trans_time,
                       random() < 0.5 AS names_invoice
                  FROM seed_invoice i, generate_series(1, i.installments) m
                UNION ALL
                SELECT NULL, NULL, NULL, 0, (100 + floor(random() * 500) * 100)::numeric(14, 2),
                       now() - random() * make_interval(days => %(days)s), false
                  FROM generate_series(1, %(suspense)s)
            ) unordered
          ) drawn;
        """,
        {"per": per_invoice, "extra": extra, "suspense": receipts - payments, "days": days},
    )
    # One journal entry per invoice and per receipt, numbered in time order as the app would have.
    conn.execute(
        """
        CREATE UNLOGGED TABLE seed_event AS
        SELECT row_number() OVER (ORDER BY posted_at, kind, key) AS entry_id, * FROM (
            SELECT 'invoice' AS kind, id AS key,
                   issue_date::timestamp AT TIME ZONE 'Africa/Nairobi' AS posted_at
              FROM seed_invoice
            UNION ALL
            SELECT 'receipt', id, trans_time FROM seed_receipt
        ) e;
        CREATE UNLOGGED TABLE seed_receipt_numbered AS
        SELECT r.*, e.entry_id FROM seed_receipt r JOIN seed_event e ON e.kind = 'receipt' AND e.key = r.id;
        CREATE UNLOGGED TABLE seed_invoice_numbered AS
        SELECT i.*, e.entry_id FROM seed_invoice i JOIN seed_event e ON e.kind = 'invoice' AND e.key = i.id;
        DROP TABLE seed_receipt, seed_invoice, seed_event;
        ALTER TABLE seed_receipt_numbered RENAME TO seed_receipt;
        ALTER TABLE seed_invoice_numbered RENAME TO seed_invoice;
        ALTER TABLE seed_receipt ADD PRIMARY KEY (id);
        ALTER TABLE seed_invoice ADD PRIMARY KEY (id);
        CREATE INDEX ON seed_receipt (entry_id);
        CREATE INDEX ON seed_invoice (entry_id);
        ANALYZE seed_customer; ANALYZE seed_invoice; ANALYZE seed_receipt;
        """
    )


def indexes_set_aside(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """Drop the written tables' list and search indexes, returning (name, table, definition) of each.

    Building an index once over all the rows costs a fraction of updating it row by row (the trigram
    indexes most of all). Only indexes that enforce nothing go: primary keys, unique indexes and the
    indexes behind constraints stay, and so does any index the ledger's checks read, so every
    constraint and trigger works on the real tables throughout. The rebuilt indexes have the
    migrations' names and definitions (pg_get_indexdef), so the schema ends as `migrate` made it.
    """
    rows = conn.execute(
        """
        SELECT x.indexrelid::regclass::text, x.indrelid::regclass::text, pg_get_indexdef(x.indexrelid)
          FROM pg_index x
         WHERE x.indrelid = ANY(%(tables)s::regclass[])
           AND NOT x.indisunique AND NOT x.indisprimary
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
           AND x.indexrelid::regclass::text <> ALL(%(kept)s)
         ORDER BY 1
        """,
        {"tables": WRITTEN_TABLES, "kept": INDEXES_THE_CHECKS_READ},
    ).fetchall()
    for name, _, _ in rows:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    return [(name, table, definition) for name, table, definition in rows]


def write_customers(conn: psycopg.Connection) -> None:
    # Codes come from the customers' own trigger and sequence, in the order of g.
    conn.execute(
        """
        INSERT INTO customers_customer (code, name, phone, phone_sha256, email, created_at, is_active)
        SELECT '', name, phone, encode(sha256(convert_to(phone, 'UTF8')), 'hex'),
               'accounts' || g || '@example.co.ke', created_at, true
          FROM seed_customer ORDER BY g
        """
    )
    conn.execute(
        """
        ALTER TABLE seed_customer ADD COLUMN id bigint, ADD COLUMN code text;
        UPDATE seed_customer s SET id = c.id, code = c.code
          FROM customers_customer c WHERE c.email = 'accounts' || s.g || '@example.co.ke';
        CREATE UNIQUE INDEX ON seed_customer (g);
        ANALYZE seed_customer;
        """
    )


def write_ledger(url: str, *, workers: int, started: float) -> None:
    """Entries and their lines, a chunk per transaction, with every ledger trigger firing. Chunks run
    on several connections at once: each claims its own balance stripe, as concurrent postings do."""
    with connect(url) as conn:
        accounts: dict[str, int] = dict(conn.execute("SELECT code, id FROM ledger_account").fetchall())
        last = conn.execute(
            "SELECT (SELECT count(*) FROM seed_invoice) + (SELECT count(*) FROM seed_receipt)"
        ).fetchone()[0]  # type: ignore[index]
    params = {"ar": accounts["1200"], "sales": accounts["4000"], "cash": accounts["1010"],
              "suspense": accounts["2200"]}  # fmt: skip

    def post_chunk(conn: psycopg.Connection, low: int, high: int) -> str:
        with conn.transaction():
            conn.execute(ENTRIES_SQL, {"low": low, "high": high})
            conn.execute(LINES_SQL, {**params, "low": low, "high": high})
        return f"journal entries {low:,}-{high:,} of {last:,} committed (checked at commit)"

    in_parallel(url, workers, started, [
        (post_chunk, low, min(low + ENTRIES_PER_TRANSACTION - 1, last))
        for low in range(1, last + 1, ENTRIES_PER_TRANSACTION)
    ])  # fmt: skip


def write_documents(url: str, *, workers: int, started: float) -> None:
    """The receivables and M-Pesa rows, in chunks of ids, each table after the ones it refers to."""
    with connect(url) as conn:
        invoices = conn.execute("SELECT max(id) FROM seed_invoice").fetchone()[0]  # type: ignore[index]
        receipts = conn.execute("SELECT max(id) FROM seed_receipt").fetchone()[0]  # type: ignore[index]

    def insert(conn: psycopg.Connection, statement: str, low: int, high: int) -> str:
        conn.execute(statement, {"low": low, "high": high, "shortcode": SHORTCODE})
        return f"{statement.split()[2]} {low:,}-{high:,}"

    def chunks(statement: str, last: int) -> list[tuple[Any, ...]]:
        return [(insert, statement, low, min(low + DOCUMENTS_PER_STATEMENT - 1, last))
                for low in range(1, last + 1, DOCUMENTS_PER_STATEMENT)]  # fmt: skip

    in_parallel(url, workers, started, [(insert, SEQUENCES_SQL, 0, 0), *chunks(INVOICES_SQL, invoices)])
    in_parallel(
        url, workers, started, [*chunks(INVOICE_LINES_SQL, invoices), *chunks(PAYMENTS_SQL, receipts)]
    )
    in_parallel(url, workers, started, [*chunks(ALLOCATIONS_SQL, receipts), *chunks(RECEIPTS_SQL, receipts)])
    in_parallel(url, workers, started, chunks(WEBHOOK_LOGS_SQL, receipts))


def indexes_rebuild(url: str, set_aside: list[tuple[str, str, str]], *, workers: int, started: float) -> None:
    """Build the set-aside indexes on `workers` connections, the costliest first (trigram indexes on
    the largest tables) so that no long build is left running alone at the end."""
    with connect(url) as conn:
        table_size: dict[str, int] = dict(
            conn.execute(
                "SELECT relname::text, pg_relation_size(oid) FROM pg_class WHERE relname = ANY(%s)",
                [WRITTEN_TABLES],
            ).fetchall()
        )

    def cost(index: tuple[str, str, str]) -> int:
        _, table, definition = index
        return table_size[table] * (4 if " USING gin " in definition else 1)

    def build(conn: psycopg.Connection, name: str, definition: str) -> str:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute(definition)
        return f"index {name}"

    jobs = [(build, name, definition) for name, _, definition in sorted(set_aside, key=cost, reverse=True)]
    in_parallel(url, workers, started, jobs, quiet=True)
    step(started, f"{len(jobs)} list and search indexes rebuilt")


def connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor)
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET work_mem = '256MB'")
    return conn


def in_parallel(
    url: str, workers: int, started: float, jobs: list[tuple[Any, ...]], *, quiet: bool = False
) -> None:
    """Run jobs (a function and its arguments after the connection) on `workers` connections,
    printing what each did unless `quiet`."""
    local = threading.local()
    opened: list[psycopg.Connection] = []

    def run(job: tuple[Any, ...]) -> str:
        if not hasattr(local, "conn"):
            local.conn = connect(url)
            opened.append(local.conn)
        function, *args = job
        result: str = function(local.conn, *args)
        return result

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(run, jobs):
                if not quiet:
                    step(started, done)
    finally:
        for conn in opened:
            conn.close()


def finish(conn: psycopg.Connection, url: str, *, workers: int, started: float) -> None:
    for table in ["invoices_invoice", "invoices_payment", "mpesa_mpesareceipt", "mpesa_webhooklog",
                  "ledger_journalentry"]:  # fmt: skip
        conn.execute(
            sql.SQL("SELECT setval(pg_get_serial_sequence({t}, 'id'), (SELECT max(id) FROM {i}))").format(
                t=sql.Literal(table), i=sql.Identifier(table)
            )
        )
    conn.execute("DROP TABLE seed_receipt, seed_invoice, seed_customer")
    # Every table, largest first, on `workers` connections: one VACUUM of the whole database would
    # take them one at a time.
    tables = conn.execute(
        """
        SELECT relname::text FROM pg_class
         WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace
         ORDER BY pg_relation_size(oid) DESC, relname
        """
    ).fetchall()

    def vacuum(conn: psycopg.Connection, table: str) -> str:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        return table

    in_parallel(url, workers, started, [(vacuum, table) for (table,) in tables], quiet=True)


if __name__ == "__main__":
    main()
