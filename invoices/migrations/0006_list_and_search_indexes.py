"""The invoice and payment lists, newest first, by index; their searched columns indexed for
`icontains` (see ledger 0006)."""

from django.db import migrations, models

from kellyos.migration_ops import contains_search_indexes

INDEXES = {
    "invoices_invoice_number_trgm": ("invoices_invoice", "number"),
    "invoices_payment_source_trgm": ("invoices_payment", "source_id"),
    "invoices_payment_ref_trgm": ("invoices_payment", "reference"),
}


class Migration(migrations.Migration):
    dependencies = [("invoices", "0005_payment_refunds"), ("ledger", "0006_contains_search_indexes")]

    operations = [
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(fields=["issue_date", "number"], name="invoices_invoice_issue_idx"),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(fields=["received_at", "id"], name="invoices_payment_time_idx"),
        ),
        contains_search_indexes(INDEXES),
    ]
