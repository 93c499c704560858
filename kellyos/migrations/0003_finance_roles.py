"""The finance roles: Accountant (every finance screen and action) and Auditor (read-only everywhere,
exports allowed). The Cashier role is seeded by the pos app."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

FINANCE_APPS = ["ledger", "customers", "invoices", "pos", "mpesa"]


def create_finance_roles(apps, schema_editor):
    for label in FINANCE_APPS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    finance = Permission.objects.filter(content_type__app_label__in=FINANCE_APPS)
    accountant, _ = Group.objects.get_or_create(name="Accountant")
    accountant.permissions.set(finance)
    auditor, _ = Group.objects.get_or_create(name="Auditor")
    auditor.permissions.set(finance.filter(codename__startswith="view_"))


class Migration(migrations.Migration):
    dependencies = [
        ("kellyos", "0002_audit"),
        ("ledger", "0005_period_lock_enforced"),
        ("customers", "0003_customer_phone_sha256"),
        ("invoices", "0004_allow_undoing_allocations"),
        ("pos", "0002_sale_references_and_cashier_group"),
        ("mpesa", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_finance_roles, migrations.RunPython.noop)]
