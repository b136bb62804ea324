"""Every page an owner can reach from the console's navigation, one click deep, each kind of
page checked by axe-core once: pages no other browser test passes through are held to the same
standard (a serious or critical violation fails)."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from portal.instances import lifecycle
from portal.instances.models import State
from tests.e2e.conftest import page_kind
from tests.instances import conftest as instance_fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

catalog = instance_fixtures.catalog
quota = instance_fixtures.quota
make_instance = instance_fixtures.make_instance
ssh_key = instance_fixtures.ssh_key

# Not pages: downloads, leaving, and the operator's console (its own tests visit it).
SKIP = re.compile(r"(\.csv|\.pdf|/logout/|/admin/|/staff/|/metrics|/healthz|/readyz|/api/v1/)")


def _links(page, origin: str) -> list[str]:
    hrefs = page.eval_on_selector_all("aside a[href], main a[href]", "els => els.map(e => e.href)")
    return [
        href.split("#")[0]
        for href in hrefs
        if href.startswith(origin) and not SKIP.search(urlsplit(href).path)
    ]


def test_every_page_an_owner_reaches_passes_axe(
    page, live_server, login, team, make_instance, ssh_key, a11y, _pages_checked
):
    box = make_instance(State.PROVISIONING, backend_id="m-box", name="trainer")
    lifecycle.mark_running(box.pk, at=timezone.now() - timedelta(hours=1))
    login(page, team.owner.user)
    start = f"{live_server.url}/o/acme/"
    page.goto(start)
    to_visit = [start, *_links(page, live_server.url)]
    seen: set[str] = set()
    checked = 0
    for depth in (0, 1):
        next_round = []
        for url in dict.fromkeys(to_visit):
            kind = page_kind(url)
            if kind in seen:
                continue
            seen.add(kind)
            response = page.goto(url)
            assert response is not None and response.status < 500, (url, response)
            if kind not in _pages_checked.kinds and response.ok:
                a11y(page)
                checked += 1
            if depth == 0:
                next_round += _links(page, live_server.url)
        to_visit = next_round
    assert len(seen) >= 30, sorted(seen)  # the navigation and what it links to (34 today)
    assert checked >= 10, "the other browser tests had already checked almost all of them?"
