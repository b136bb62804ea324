"""Fine-grained scopes, allowed addresses and the last address of each token.

Tokens made with the first API's two scopes keep working with the same reach: "read" becomes
every area's read scope, "read_write" every area's write scope, each as far as the owner's
role allows it now (portal/api/scopes.py: a token never has more than its creator's role).
"""

from django.db import migrations, models


class _Role:
    """What portal.api.scopes asks of a membership: can(permission)."""

    def __init__(self, role: str):
        self.role = role

    def can(self, permission: str) -> bool:
        from portal.orgs.roles import role_allows

        return role_allows(self.role, permission)


def to_scopes(apps, schema_editor):
    from portal.api import scopes

    ApiToken = apps.get_model("api", "ApiToken")
    Membership = apps.get_model("orgs", "Membership")
    roles = {
        (m.organization_id, m.user_id): m.role
        for m in Membership.objects.only("organization_id", "user_id", "role")
    }
    for token in ApiToken.objects.all():
        role = roles.get((token.organization_id, token.user_id))
        if role is None:  # the token is dead already (its owner left)
            token.scopes = []
        else:
            member = _Role(role)
            writes = token.scope == "read_write" and scopes.role_can_write(member)
            token.scopes = scopes.allowed_for(member, scopes.WRITE if writes else scopes.READ)
        token.save(update_fields=["scopes"])


def to_scope(apps, schema_editor):
    ApiToken = apps.get_model("api", "ApiToken")
    for token in ApiToken.objects.all():
        writes = any(scope.endswith(":write") for scope in token.scopes)
        token.scope = "read_write" if writes else "read"
        token.save(update_fields=["scope"])


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0002_periodic_tasks"),
        ("orgs", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(
                default=list, help_text='e.g. ["instances:write", "billing:read"]'
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="allowed_ips",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Addresses and networks (CIDR) it may be used from; empty: anywhere.",
            ),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="last_used_ip",
            field=models.GenericIPAddressField(blank=True, null=True),
        ),
        migrations.RunPython(to_scopes, to_scope),
        migrations.RemoveField(model_name="apitoken", name="scope"),
    ]
