"""Prepare a portal that runs as separate processes (after migrate and seed_demo) for a test:

    python -m tests.runtime.portal_setup --quota us-east-1/h100=100 [--period 5 [--expires 60]]

Sets on-demand quotas of the demo organization (acme-ai), adds an SSH key, creates two
read-write API tokens for the demo customer (each may write 60 times a minute), and with
--period makes reconciliation and the capacity refresh run every PERIOD seconds, their messages
expiring after --expires seconds (PERIOD - 1 by default). Prints JSON: the tokens, the key's id
and an image's code. Runs with the portal's settings from the environment.
"""

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quota", action="append", default=[], help="REGION/GPU=LIMIT")
    parser.add_argument("--period", type=int)
    parser.add_argument("--expires", type=int)
    args = parser.parse_args()

    import django

    django.setup()

    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from portal.api.models import Scope
    from portal.api.services import api_token_create
    from portal.catalog.models import GpuModel, Image, Region
    from portal.orgs.models import Membership
    from portal.quotas.models import Kind
    from portal.quotas.services import quota_limit_set
    from portal.sshkeys.services import sshkey_add
    from tests.lib.keys import public_line

    membership = Membership.objects.select_related("organization", "user").get(
        organization__slug="acme-ai", user__email="demo@backfill.localhost"
    )
    for quota in args.quota:
        place, limit = quota.split("=")
        region, gpu = place.split("/")
        quota_limit_set(
            organization=membership.organization,
            region=Region.objects.get(code=region),
            gpu_model=GpuModel.objects.get(code=gpu),
            kind=Kind.ON_DEMAND,
            limit=int(limit),
            reason="Test: room for the launches",
        )
    key = sshkey_add(membership=membership, name="test", public_key=public_line(), shared=False)
    tokens = [
        api_token_create(membership=membership, name=f"test {n}", scope=Scope.READ_WRITE)[1]
        for n in (1, 2)
    ]
    if args.period:
        every, _ = IntervalSchedule.objects.get_or_create(
            every=args.period, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.filter(
            task__in=[
                "portal.instances.tasks.instances_reconcile",
                "portal.instances.tasks.capacity_refresh",
            ]
        ).update(interval=every, expire_seconds=args.expires or max(1, args.period - 1))
    image = Image.objects.filter(active=True).order_by("code").first()
    print(json.dumps({"tokens": tokens, "ssh_key_id": key.pk, "image": image.code}))


if __name__ == "__main__":
    main()
