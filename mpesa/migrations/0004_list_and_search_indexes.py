"""The receipts list and the collections report by time; the searched columns of receipts and of the
webhook log indexed for `icontains` (see ledger 0006)."""

from django.db import migrations, models

from kellyos.migration_ops import contains_search_indexes

INDEXES = {
    "mpesa_receipt_trans_id_trgm": ("mpesa_mpesareceipt", "trans_id"),
    "mpesa_receipt_bill_ref_trgm": ("mpesa_mpesareceipt", "bill_ref_number"),
    "mpesa_receipt_payer_name_trgm": ("mpesa_mpesareceipt", "payer_name"),
    "mpesa_webhooklog_trans_id_trgm": ("mpesa_webhooklog", "trans_id"),
}


class Migration(migrations.Migration):
    dependencies = [("mpesa", "0003_refunds"), ("ledger", "0006_contains_search_indexes")]

    operations = [
        migrations.AddIndex(
            model_name="mpesareceipt",
            index=models.Index(fields=["trans_time", "id"], name="mpesa_receipt_time_idx"),
        ),
        contains_search_indexes(INDEXES),
    ]
