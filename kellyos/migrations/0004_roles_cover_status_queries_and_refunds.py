"""Give the finance roles the permissions of models added since they were seeded (Transaction Status
queries, refunds): the same rule as 0003, applied again."""

from importlib import import_module

from django.db import migrations

create_finance_roles = import_module("kellyos.migrations.0003_finance_roles").create_finance_roles


class Migration(migrations.Migration):
    dependencies = [
        ("kellyos", "0003_finance_roles"),
        ("mpesa", "0003_refunds"),
    ]

    operations = [migrations.RunPython(create_finance_roles, migrations.RunPython.noop)]
