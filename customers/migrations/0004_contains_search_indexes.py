"""The customers' searched columns, indexed for `icontains` (see ledger 0006)."""

from django.db import migrations

from kellyos.migration_ops import contains_search_indexes

INDEXES = {
    "customers_customer_code_trgm": ("customers_customer", "code"),
    "customers_customer_name_trgm": ("customers_customer", "name"),
    "customers_customer_phone_trgm": ("customers_customer", "phone"),
    "customers_customer_email_trgm": ("customers_customer", "email"),
}


class Migration(migrations.Migration):
    dependencies = [("customers", "0003_customer_phone_sha256"), ("ledger", "0006_contains_search_indexes")]

    operations = [contains_search_indexes(INDEXES)]
