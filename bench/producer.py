"""A launch producer of the provisioning benchmark (bench/provisioning.py), in its own process.

Its own module so that a spawned process can import it before Django is set up.
"""

from __future__ import annotations

import time
from typing import Any


def produce(
    membership_id: int, key_id: int, names: list[str], start: Any, out: Any, image: str
) -> None:
    """One producer (as a gunicorn worker or an API client's connection would be): waits at
    `start`, then calls `instance_launch` for each name, one after the other, and puts its CPU
    seconds (the calls alone), when its first call began and when its last returned."""
    import django

    django.setup()
    from portal.instances.services import instance_launch
    from portal.orgs.models import Membership

    membership = Membership.objects.select_related("organization", "user").get(pk=membership_id)
    start.wait()
    began, cpu = time.perf_counter(), time.process_time()
    for i, name in enumerate(names):
        instance_launch(
            membership=membership,
            name=name,
            instance_type="gpu_1x_h100",
            region="us-east-1" if i % 2 == 0 else "eu-west-1",
            image=image,
            ssh_key_ids=[key_id],
            preemptible=False,
            idempotency_key=None,
        )
    out.put((time.process_time() - cpu, began, time.perf_counter()))
