"""The suspense queue and the webhook log filtered by kind, newest first and counted, by index."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("mpesa", "0004_list_and_search_indexes")]

    operations = [
        migrations.AddIndex(
            model_name="mpesareceipt",
            index=models.Index(
                condition=models.Q(("payment__isnull", True), ("unallocated_amount__gt", 0)),
                fields=["trans_time", "id"],
                name="mpesa_receipt_queue_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="webhooklog",
            index=models.Index(fields=["kind", "received_at"], name="mpesa_webhooklog_kind_idx"),
        ),
    ]
