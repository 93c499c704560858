"""Give the finance roles the permissions of the models added since they were seeded (Transaction
Status queries, refunds), without undoing changes made to the groups since."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def add_new_permissions(apps, schema_editor):
    app_config = apps.get_app_config("mpesa")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    new = Permission.objects.filter(
        content_type__app_label="mpesa", content_type__model__in=["transactionstatusquery", "mpesarefund"]
    )
    Group.objects.get_or_create(name="Accountant")[0].permissions.add(*new)
    Group.objects.get_or_create(name="Auditor")[0].permissions.add(*new.filter(codename__startswith="view_"))


class Migration(migrations.Migration):
    dependencies = [
        ("kellyos", "0003_finance_roles"),
        ("mpesa", "0003_refunds"),
    ]

    operations = [migrations.RunPython(add_new_permissions, migrations.RunPython.noop)]
