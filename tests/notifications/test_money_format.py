"""One money format in every page and e-mail that shows a price (issue 19, portal.lib.money):
`$1.85/GPU-hour`, `$2.49/hour`, amounts to the cent; never `1.8500 USD per GPU-hour` or `/h`."""

import re
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from portal.market.models import CapacityAlert
from portal.notifications.services import notify
from portal.reservations.models import ReservationRequest
from tests.notifications.test_plain_text import odd  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

# What the old formats looked like: a price with its code and "per", 4 places shown as they are
# stored, the "/h" abbreviation, a "$" typed before a number formatted by hand.
OLD = [
    re.compile(r"\d\.\d+ ?(USD|EUR|GBP) per"),
    re.compile(r"\d\.\d{4} (USD|EUR|GBP)"),
    re.compile(r"\d/h\b"),
    re.compile(r"\b(USD|EUR|GBP)/h\b"),
    re.compile(r"\d\s*/\s*h[<\s\"]"),
]

# The e-mails that name a price, and how each names it (the fixture quotes 1.85 per GPU-hour).
PRICED_MAILS = {
    "reservation_quote": "$1.85/GPU-hour",
    "reservation_accepted": "$1.85/GPU-hour",
    "reservation_confirmed": "$1.85/GPU-hour",
    "reservation_quote_expiring": "$1.85/GPU-hour",
    "reservation_quote_expired": "$1.85/GPU-hour",
    "capacity_available": "$1.20/hour",
}


def _parts(message) -> list[str]:
    html = message.alternatives[0][0] if message.alternatives else ""
    return [message.subject, message.body, html]


def _has_no_old_format(where: str, text: str) -> None:
    for pattern in OLD:
        assert not pattern.search(text), (where, pattern.pattern, pattern.search(text))


def test_every_email_with_a_price_shows_it_in_the_one_format(odd):  # noqa: F811
    CapacityAlert.objects.filter(pk=odd["capacity_available"]["alert_id"]).update(
        max_price=Decimal("1.2000")
    )
    for kind, params in odd.items():
        mail.outbox.clear()
        notify(kind, **params)
        for message in mail.outbox:
            for part in _parts(message):
                _has_no_old_format(kind, part)
            if kind in PRICED_MAILS:
                body, html = message.body, _parts(message)[2]
                assert PRICED_MAILS[kind] in body, (kind, body)
                assert PRICED_MAILS[kind] in html, kind


def test_one_gpu_is_one_gpu_in_the_reservation_emails(odd):  # noqa: F811
    pk = odd["reservation_quote"]["reservation_request_id"]
    ReservationRequest.objects.filter(pk=pk).update(gpus=1)
    for kind in ("reservation_quote", "reservation_confirmed", "reservation_accepted"):
        mail.outbox.clear()
        notify(kind, reservation_request_id=pk)
        for message in mail.outbox:
            assert re.search(r"\b1 NVIDIA H100 80GB GPU\b(?!s)", message.body), kind
            for part in _parts(message):
                assert "1 NVIDIA H100 80GB GPUs" not in part, (kind, part)
    capacity = odd["capacity_available"]
    mail.outbox.clear()
    notify("capacity_available", **capacity)
    assert "1 x 1x H100 80GB is free in" in mail.outbox[0].body


def test_every_page_with_a_price_shows_it_in_the_one_format(
    odd,  # noqa: F811
    team,
    catalog,
    make_instance,
    client_for,
):
    org = team.organization.slug
    request_pk = odd["reservation_quote"]["reservation_request_id"]
    CapacityAlert.objects.filter(pk=odd["capacity_available"]["alert_id"]).update(
        max_price=Decimal("1.2000")
    )
    instance = make_instance("running", preemptible=True, max_price_per_hour=Decimal("1.6"))
    launch = reverse("instances:launch", args=[org])
    pages = {
        # page: what it must say (the catalog prices 1x H100 at 2.49, preemptible 1.29)
        reverse("catalog:catalog", args=[org]): ["$2.49/hour</strong>", "$1.29/hour</strong>"],
        launch + "?instance_type=gpu_1x_h100&region=us-east-1": [
            "$2.49/hour<br>",
            "$1.29/hour preemptible",
            '$2.49<span class="muted" style="font-size:.9rem;font-weight:500">/hour</span>',
        ],
        reverse("instances:detail", args=[org, instance.pk]): [
            "$1.29/hour (preemptible)",
            '<dd data-testid="max-price">$1.60/hour',
        ],
        reverse("market:pricing"): ['$2.49<small class="muted">/hour</small>'],
        reverse("market:alerts", args=[org]): ["$1.20/hour"],
        reverse("reservations:list", args=[org]): ["$1.85/GPU-hour"],
        reverse("reservations:request_detail", args=[org, request_pk]): [
            "Quote: <strong>$1.85/GPU-hour</strong>",
        ],
        reverse("billing:overview", args=[org]): ["/hour"],
        reverse("dashboard"): [],
    }
    client = client_for(team.owner.user)
    for url, expected in pages.items():
        response = client.get(url, follow=True)
        assert response.status_code == 200, url
        html = response.content.decode()
        for text in expected:
            assert text in html, (url, text)
        _has_no_old_format(url, html)
        assert "USD per" not in html and "per GPU-hour</strong>" not in html, url
