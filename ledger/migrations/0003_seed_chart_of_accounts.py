from django.db import migrations

from ledger.chart import CHART_OF_ACCOUNTS


def seed_chart_of_accounts(apps, schema_editor):
    Account = apps.get_model("ledger", "Account")
    for code, name, account_type, description in CHART_OF_ACCOUNTS:
        Account.objects.get_or_create(
            code=code, defaults={"name": name, "type": account_type, "description": description}
        )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_ledger_integrity_triggers")]

    operations = [migrations.RunPython(seed_chart_of_accounts, migrations.RunPython.noop)]
