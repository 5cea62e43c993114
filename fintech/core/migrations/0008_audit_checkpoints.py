"""Signed audit checkpoints, append-only like the audit trail (docs/decisions/0020-audit-checkpoints.md)."""

import django.db.models.deletion
from django.db import migrations, models

# The trigger function of 0003_audit_trail, now naming the table it guards, so both tables share it.
# TRUNCATE is let through only for a transaction that sets fintech.allow_audit_truncate = 'on'
# (the test suite's database flush; the application never does).
SHARED_FUNCTION = """
CREATE OR REPLACE FUNCTION core_auditevent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('fintech.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER core_auditcheckpoint_no_update_delete BEFORE UPDATE OR DELETE ON core_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION core_auditevent_append_only();
CREATE TRIGGER core_auditcheckpoint_no_truncate BEFORE TRUNCATE ON core_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION core_auditevent_append_only();
"""
# Back to the function exactly as 0003 created it.
ORIGINAL_FUNCTION = """
DROP TRIGGER core_auditcheckpoint_no_truncate ON core_auditcheckpoint;
DROP TRIGGER core_auditcheckpoint_no_update_delete ON core_auditcheckpoint;
CREATE OR REPLACE FUNCTION core_auditevent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('fintech.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'core_auditevent is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0007_customer_frozen"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.BigIntegerField(db_index=True)),
                ("chain_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField()),
                ("key_id", models.CharField(max_length=64)),
                ("signature", models.CharField(max_length=64)),
                (
                    "verification",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="checkpoint",
                        to="core.auditverification",
                    ),
                ),
            ],
            options={
                "ordering": ["-seq", "-pk"],
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("seq__gte", 1)), name="core_audit_checkpoint_seq")
                ],
            },
        ),
        migrations.RunSQL(SHARED_FUNCTION, ORIGINAL_FUNCTION),
    ]
