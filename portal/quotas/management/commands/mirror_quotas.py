"""`manage.py mirror_quotas`: every organization's GPU quotas into the backend's own limits.

With the slurm driver: each organization's Slurm account (made if missing) gets GrpTRES equal to
its quota totals per GPU model. Limits follow every change by themselves (a task after each
`quota_limit_set`); this is for organizations whose quotas were set before the slurm driver was
configured (`BACKEND=slurm make run` on an existing database runs it). A no-op otherwise.
"""

from django.core.management.base import BaseCommand

from portal.instances import backend_quota
from portal.provisioning import slurm_accounts
from portal.quotas.models import Quota


class Command(BaseCommand):
    help = "Mirror every organization's GPU quotas into the backend (Slurm accounts' GrpTRES)."

    def handle(self, *args, **options) -> None:
        if not slurm_accounts.configured():
            self.stdout.write("The provisioning backend keeps no limits of its own: nothing to do.")
            return
        organizations = Quota.objects.values_list("organization_id", flat=True).distinct()
        count = 0
        for organization_id in organizations.order_by("organization_id"):
            if backend_quota.mirror(organization_id=organization_id):
                count += 1
        self.stdout.write(f"Mirrored the GPU quotas of {count} organization(s) into Slurm.")
