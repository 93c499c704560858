"""Reads that must not grow with history: the admin's search (`icontains`, which PostgreSQL sees as
upper(column::text) LIKE '%WORD%') is answered by pg_trgm indexes on exactly that expression, instead
of reading every journal entry. The later apps index their searched columns the same way."""

from django.db import migrations

from kellyos.migration_ops import contains_search_indexes

INDEXES = {
    "ledger_entry_memo_trgm": ("ledger_journalentry", "memo"),
    "ledger_entry_cause_id_trgm": ("ledger_journalentry", "cause_id"),
}


class Migration(migrations.Migration):
    dependencies = [("ledger", "0005_period_lock_enforced")]

    operations = [
        contains_search_indexes(INDEXES),
    ]
