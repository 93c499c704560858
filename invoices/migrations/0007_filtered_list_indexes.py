"""The invoice list filtered by status, newest first, and the aged receivables, by index."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("invoices", "0006_list_and_search_indexes")]

    operations = [
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                fields=["status", "issue_date", "number"], name="invoices_invoice_state_day_idx"
            ),
        ),
    ]
