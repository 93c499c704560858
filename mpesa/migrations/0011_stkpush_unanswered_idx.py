from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mpesa", "0010_stk_prompt_sending"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="stkpush",
            index=models.Index(
                condition=models.Q(("status", "UNANSWERED")),
                fields=["created_at"],
                name="mpesa_stkpush_unanswered_idx",
            ),
        ),
    ]
