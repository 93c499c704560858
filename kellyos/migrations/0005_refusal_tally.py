from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kellyos", "0004_roles_cover_status_queries_and_refunds"),
    ]

    operations = [
        migrations.CreateModel(
            name="RefusalTally",
            fields=[
                ("reason", models.CharField(max_length=40, primary_key=True, serialize=False)),
                ("refusals", models.BigIntegerField(default=0)),
            ],
        ),
    ]
