"""Reclaims in the admin: staff make orders and set the policy; bad input is a clear error
that changes nothing."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.reclaims.models import ReclaimOrder, ReclaimPolicy


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def post_order(staff_client, catalog, **changes):
    data = {
        "region": catalog.us_east.pk,
        "gpu_model": catalog.h100.pk,
        "gpus": "2",
        "deadline": (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"),
        "notice_seconds": "",
        "reason": "Quarterly evaluation run.",
        **changes,
    }
    return staff_client.post(reverse("admin:reclaims_reclaimorder_create"), data)


def test_staff_make_an_order_and_see_its_victims_and_progress(
    staff_client, catalog, spot, django_capture_on_commit_callbacks
):
    first, second = spot(bid="0.5"), spot(bid="0.7")
    with django_capture_on_commit_callbacks(execute=False):
        response = post_order(staff_client, catalog)
    order = ReclaimOrder.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:reclaims_reclaimorder_change", args=[order.pk])

    page = staff_client.get(response["Location"]).content.decode()
    assert "Returns 2 of 2 NVIDIA H100 80GB GPUs in us-east-1" in page
    assert "0 of 2 instances ended; 0 of 2 GPUs free" in page
    assert first.name in page and second.name in page
    listing = staff_client.get(reverse("admin:reclaims_reclaimorder_changelist")).content.decode()
    assert f"RO-{order.pk}" in listing
    assert staff_client.get(reverse("admin:reclaims_reclaimvictim_changelist")).status_code == 200


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gpus": "0"}, "Ask for at least 1 GPU."),
        ({"gpus": "-3"}, "Ask for at least 1 GPU."),
        ({"region": "999999"}, "Unknown region: choose one of the list."),
        ({"gpu_model": "999999"}, "Unknown GPU model: choose one of the list."),
        ({"deadline": "2020-01-01 14:00"}, "is in the past"),
        ({"deadline": "tomorrow-ish"}, "Give the deadline as"),
        ({"notice_seconds": "5"}, "must be at least 120 seconds"),
    ],
)
def test_bad_orders_in_the_admin_are_a_clear_error(staff_client, catalog, spot, changes, message):
    victim = spot()
    response = post_order(staff_client, catalog, **changes)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ReclaimOrder.objects.exists()
    victim.refresh_from_db()
    assert victim.reclaim_at is None


def test_a_deadline_given_as_a_time_of_day_is_today_utc(staff_client, catalog, spot):
    spot()
    later = timezone.now() + timedelta(minutes=30)
    if later.date() != timezone.now().date():
        pytest.skip("too close to midnight UTC")
    post_order(staff_client, catalog, deadline=later.strftime("%H:%M"))
    assert ReclaimOrder.objects.get().deadline.strftime("%H:%M") == later.strftime("%H:%M")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"preemptible_only": ""}, "never reclaims on-demand machines"),
        ({"spare_reserved": ""}, "Capacity held by a reservation is never reclaimed"),
        ({"notice_seconds": "30"}, "must be at least 120 seconds"),
    ],
)
def test_the_policy_page_refuses_what_is_never_reclaimed(staff_client, changes, message):
    url = reverse("admin:reclaims_reclaimpolicy_changelist")
    change_url = staff_client.get(url)["Location"]
    data = {
        "notice_seconds": "180",
        "order": "newest",
        "preemptible_only": "on",
        "spare_reserved": "on",
        "whole_machines": "on",
        **changes,
    }
    data = {key: value for key, value in data.items() if value != ""}
    response = staff_client.post(change_url, data)
    assert response.status_code == 200
    assert message in response.content.decode()
    policy = ReclaimPolicy.objects.get()
    assert (policy.notice_seconds, policy.order) == (120, "price_then_newest")


def test_the_policy_page_saves_a_good_policy(staff_client):
    change_url = staff_client.get(reverse("admin:reclaims_reclaimpolicy_changelist"))["Location"]
    data = {
        "notice_seconds": "300",
        "order": "newest",
        "preemptible_only": "on",
        "spare_reserved": "on",
        "whole_machines": "on",
    }
    assert staff_client.post(change_url, data).status_code == 302
    policy = ReclaimPolicy.objects.get()
    assert (policy.notice_seconds, policy.order) == (300, "newest")
