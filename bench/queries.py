"""SQL queries per page, at 10 and at 1,000 instances (in-process, Django's test client)."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.results import Results, Row
from bench.seed import Seeded
from portal.billing.page import page_changed


def main_pages(seeded: Seeded) -> dict[str, str]:
    slug = seeded.organization.slug
    return {
        "instance list": reverse("instances:list", args=[slug]),
        "instance detail": reverse("instances:detail", args=[slug, seeded.detail_instance_id]),
        "billing overview": reverse("billing:overview", args=[slug]),
        "dashboard": reverse("dashboard_org", args=[slug]),
        "SSH keys": reverse("sshkeys:list", args=[slug]),
        "quotas": reverse("quotas:quotas", args=[slug]),
        "audit": reverse("orgs:audit", args=[slug]),
    }


def count(seeded: Seeded) -> dict[str, int]:
    client = Client()
    client.force_login(seeded.owner)
    counts = {}
    for name, url in main_pages(seeded).items():
        client.get(url)  # warm: the first request of a client creates its session row
        # The billing page kept by that view (portal/billing/page.py) is not read: the count is
        # of the page rendered, as at the first view of each minute.
        page_changed(seeded.organization.pk)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{name} {url} answered {response.status_code}")
        counts[name] = len(captured)
    return counts


def run(results: Results, *, small: Seeded, large: Seeded) -> None:
    at_small, at_large = count(small), count(large)
    for name, few in at_small.items():
        many = at_large[name]
        results.add(
            Row(
                section="queries per page",
                name=name,
                figure=f"{many} queries at {large.instances:,} instances",
                baseline=f"{few} at {small.instances}",
                ratio=many / few if few else None,
                target="same count",
                met=many == few,
            )
        )
