"""Sale numbers from a database sequence (POS-000001: 10 characters, within STK Push's 12 for
AccountReference), and the Cashier group, which may ring up, view and cancel sales and nothing else."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from pos.roles import CASHIER_GROUP, CASHIER_PERMISSIONS

FORWARD = """
CREATE SEQUENCE pos_sale_reference_seq;

CREATE FUNCTION pos_sale_assign_reference() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_number bigint;
BEGIN
    IF NEW.reference IS NULL OR NEW.reference = '' THEN
        next_number := nextval('pos_sale_reference_seq');
        NEW.reference := 'POS-' || CASE WHEN next_number < 1000000 THEN lpad(next_number::text, 6, '0')
                                        ELSE next_number::text END;
    END IF;
    RETURN NEW;
END $$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION pos_sale_assign_reference() SET search_path = %I, pg_catalog, pg_temp',
                   current_schema());
END $$;

CREATE TRIGGER pos_sale_assign_reference
    BEFORE INSERT ON pos_sale
    FOR EACH ROW EXECUTE FUNCTION pos_sale_assign_reference();
"""

BACKWARD = """
DROP TRIGGER pos_sale_assign_reference ON pos_sale;
DROP FUNCTION pos_sale_assign_reference();
DROP SEQUENCE pos_sale_reference_seq;
"""


def create_cashier_group(apps, schema_editor):
    app_config = apps.get_app_config("pos")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=CASHIER_GROUP)
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="pos", codename__in=CASHIER_PERMISSIONS)
    )


class Migration(migrations.Migration):
    dependencies = [("pos", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RunPython(create_cashier_group, migrations.RunPython.noop),
    ]
