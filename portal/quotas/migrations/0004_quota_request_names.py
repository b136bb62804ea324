from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("quotas", "0003_rule_capacity_margin")]

    operations = [
        migrations.RenameField("quotarequestmessage", "request", "quota_request"),
        migrations.RenameField("quotachange", "request", "quota_request"),
    ]
