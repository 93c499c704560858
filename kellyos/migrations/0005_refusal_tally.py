from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("kellyos", "0004_roles_cover_status_queries_and_refunds"),
    ]

    operations = [
        migrations.CreateModel(
            name="RefusalTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("backend_pid", models.IntegerField()),
                ("reason", models.CharField(max_length=40)),
                ("refusals", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("backend_pid", "reason"), name="kellyos_refusaltally_one_per_backend"
                    )
                ],
            },
        ),
    ]
