"""PostgreSQL refuses UPDATE and DELETE on audit entries (see portal/audit/models.py for why the
model refuses them too).

One UPDATE is let through: setting actor_user_id or organization_id to NULL while nothing else
changes, which is what Django does when a user or an organization is deleted (SET_NULL).
TRUNCATE is not blocked: it needs the table owner's rights, the portal never issues it, and the
test runner empties tables with it between transactional tests.

SQLite (the `make run` convenience) has no such trigger; the model's checks still apply there.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.id, NEW.at, NEW.action, NEW.actor_kind, NEW.actor_label, NEW.actor_token_id,
            NEW.organization_label, NEW.target_type, NEW.target_id, NEW.target_label, NEW.ip,
            NEW.detail)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.at, OLD.action, OLD.actor_kind, OLD.actor_label, OLD.actor_token_id,
            OLD.organization_label, OLD.target_type, OLD.target_id, OLD.target_label, OLD.ip,
            OLD.detail)
       AND (NEW.actor_user_id IS NULL OR NEW.actor_user_id IS NOT DISTINCT FROM OLD.actor_user_id)
       AND (NEW.organization_id IS NULL
            OR NEW.organization_id IS NOT DISTINCT FROM OLD.organization_id)
    THEN
        RETURN NEW;  -- a deleted user or organization: the key goes, the labels stay
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % refused on audit_auditentry id %', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_entry_append_only
    BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""


def create_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)  # "%" in the message is not a placeholder


def drop_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger, elidable=False)]
