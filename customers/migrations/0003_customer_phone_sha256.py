import hashlib

from django.db import migrations, models


def hash_existing_phones(apps, schema_editor):
    Customer = apps.get_model("customers", "Customer")
    for customer in Customer.objects.exclude(phone="").only("pk", "phone"):
        Customer.objects.filter(pk=customer.pk).update(
            phone_sha256=hashlib.sha256(customer.phone.encode()).hexdigest()
        )


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_customer_codes_and_ledger_link")]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="phone_sha256",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=64),
        ),
        migrations.RunPython(hash_existing_phones, migrations.RunPython.noop),
    ]
