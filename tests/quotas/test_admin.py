"""Staff decide quota requests in Django admin, through the same services as everything else."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from portal.quotas import services
from portal.quotas.models import (
    AutoApprovalRule,
    Kind,
    Quota,
    QuotaChange,
    QuotaDefault,
    QuotaRequest,
    QuotaRequestState,
)
from portal.quotas.services import Decision
from tests.web.admin_rows import djangos_rows, our_rows

pytestmark = pytest.mark.django_db

LIST = "/admin/quotas/quotarequest/"


def change_url(quota_request) -> str:
    return f"{LIST}{quota_request.pk}/change/"


@pytest.fixture
def admin_client(client_for, staff):
    return client_for(staff)


def test_only_staff_get_in(team, gpu_catalog, submit, client_for):
    quota_request = submit()
    response = client_for(team.owner.user).get(change_url(quota_request))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_list_filters_by_state_and_age(team, gpu_catalog, submit, staff, admin_client):
    old = submit(requested_limit=16)
    QuotaRequest.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    services.quota_request_decide(quota_request=old, decision=Decision.DENY, decided_by=staff)
    new = submit(requested_limit=32)

    def listed(**params) -> set[int]:
        response = admin_client.get(LIST, params)
        assert response.status_code == 200
        return {r.pk for r in response.context["cl"].result_list}

    assert listed() == {old.pk, new.pk}
    assert listed(state="submitted") == {new.pk}
    assert listed(state="denied") == {old.pk}
    assert listed(open="yes") == {new.pk}
    assert listed(age="1d") == {new.pk}
    assert listed(age="7d") == {old.pk}
    assert listed(age="1-7d") == set()


def test_the_list_searches_by_organization_requester_and_number(
    team, outsider, gpu_catalog, submit, admin_client
):
    ours = submit(by=team.admin)
    theirs = submit(by=outsider)

    def found(q: str) -> set[int]:
        response = admin_client.get(LIST, {"q": q})
        assert response.status_code == 200
        return {r.pk for r in response.context["cl"].result_list}

    assert found(outsider.organization.name) == {theirs.pk}
    assert found(team.admin.user.email.upper()) == {ours.pk}
    assert ours.pk in found(str(ours.pk))
    assert found("987654321") == set()  # no such number, organization or e-mail
    assert found("no-such-organization") == set()


def test_the_change_form_shows_use_limits_history_and_standing(
    team, gpu_catalog, submit, set_limit, staff, admin_client
):
    set_limit(4)
    services.quota_reserve(
        organization=team.organization,
        region=gpu_catalog.us_east,
        gpu_model=gpu_catalog.h100,
        gpus=3,
        preemptible=False,
    )
    earlier = submit(kind=Kind.PREEMPTIBLE, requested_limit=2)
    services.quota_request_decide(
        quota_request=earlier, decision=Decision.DENY, message="Not now.", decided_by=staff
    )
    quota_request = submit(requested_limit=16)
    page = admin_client.get(change_url(quota_request)).content.decode()
    assert "Limits and use" in page
    assert "<td>4</td><td>3</td><td>1</td>" in page  # on-demand limit, in use, free
    assert "an owner has a verified e-mail address." in page
    assert "no unpaid invoice." in page and "Good standing." in page
    assert f"#{earlier.pk}</a>" in page and "Denied" in page  # request history
    assert "Set up by the test." in page  # limit history
    assert "Fine-tuning a 70B model" in page
    assert 'name="decision"' in page and 'name="grant_limit"' in page
    assert 'name="decision_message"' in page


def test_a_partial_approval_from_the_change_form(
    team, gpu_catalog, submit, staff, admin_client, committed
):
    quota_request = submit(requested_limit=16)
    with committed():
        response = admin_client.post(
            change_url(quota_request),
            {"decision": "approve", "grant_limit": "8", "decision_message": "8 for now."},
        )
    assert response.status_code == 302
    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.PARTLY_APPROVED
    assert quota_request.granted_limit == 8 and quota_request.decided_by == staff
    assert Quota.objects.get(organization=team.organization).on_demand_limit == 8
    change = QuotaChange.objects.get(quota_request=quota_request)
    assert change.changed_by == staff and change.new_limit == 8
    assert {m.to[0] for m in mail.outbox} == {team.owner.user.email, team.admin.user.email}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"decision": "approve", "grant_limit": "17"}, "grant from 1 to 16"),
        ({"decision": "approve", "grant_limit": "-1"}, "cannot be negative"),
        ({"decision": "more_info", "decision_message": ""}, "Write the question"),
    ],
)
def test_a_bad_decision_shows_the_error_and_changes_nothing(
    team, gpu_catalog, submit, admin_client, data, message
):
    quota_request = submit(requested_limit=16)
    response = admin_client.post(change_url(quota_request), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.SUBMITTED
    assert not QuotaChange.objects.exists()


def test_saving_without_a_decision_changes_nothing(team, gpu_catalog, submit, admin_client):
    quota_request = submit()
    assert admin_client.post(change_url(quota_request), {"decision": ""}).status_code == 302
    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.SUBMITTED


def test_a_decided_request_has_no_decision_fields(team, gpu_catalog, submit, staff, admin_client):
    quota_request = submit()
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.DENY, decided_by=staff
    )
    page = admin_client.get(change_url(quota_request)).content.decode()
    assert 'name="decision"' not in page
    # A forged POST is refused by the same rule.
    response = admin_client.post(change_url(quota_request), {"decision": "approve"})
    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.DENIED
    assert response.status_code in (200, 302)


def test_actions_approve_as_asked_and_deny(team, gpu_catalog, submit, staff, admin_client):
    first = submit(requested_limit=16)
    second = submit(kind=Kind.PREEMPTIBLE, requested_limit=8)
    third = submit(region=gpu_catalog.eu_west, requested_limit=4)
    admin_client.post(
        LIST, {"action": "approve_as_asked", "_selected_action": [first.pk, second.pk]}
    )
    admin_client.post(LIST, {"action": "deny", "_selected_action": [third.pk]})
    states = dict(QuotaRequest.objects.values_list("pk", "state"))
    assert states == {
        first.pk: QuotaRequestState.APPROVED,
        second.pk: QuotaRequestState.APPROVED,
        third.pk: QuotaRequestState.DENIED,
    }
    quota = Quota.objects.get(organization=team.organization, region=gpu_catalog.us_east)
    assert (quota.on_demand_limit, quota.preemptible_limit) == (16, 8)


def test_an_action_on_a_decided_request_reports_it(team, gpu_catalog, submit, staff, admin_client):
    quota_request = submit()
    services.quota_request_decide(
        quota_request=quota_request, decision=Decision.DENY, decided_by=staff
    )
    response = admin_client.post(
        LIST, {"action": "approve_as_asked", "_selected_action": [quota_request.pk]}, follow=True
    )
    assert "cannot be decided again" in response.content.decode()
    quota_request.refresh_from_db()
    assert quota_request.state == QuotaRequestState.DENIED


def test_requests_cannot_be_added_or_deleted_in_admin(team, gpu_catalog, submit, admin_client):
    quota_request = submit()
    assert admin_client.get(f"{LIST}add/").status_code == 403
    assert admin_client.get(f"{LIST}{quota_request.pk}/delete/").status_code == 403


def test_staff_set_a_limit_by_hand_with_a_reason(team, gpu_catalog, set_limit, staff, admin_client):
    quota = set_limit(4)
    url = f"/admin/quotas/quota/{quota.pk}/change/"
    refused = admin_client.post(url, {"on_demand_limit": "12", "preemptible_limit": "0"})
    assert refused.status_code == 200 and "Say why the limit changes." in refused.content.decode()
    response = admin_client.post(
        url, {"on_demand_limit": "12", "preemptible_limit": "0", "reason": "Enterprise deal."}
    )
    assert response.status_code == 302
    change = QuotaChange.objects.first()
    assert (change.old_limit, change.new_limit, change.reason) == (4, 12, "Enterprise deal.")
    assert change.changed_by == staff


def test_staff_add_a_quota_in_admin(team, gpu_catalog, staff, admin_client):
    response = admin_client.post(
        "/admin/quotas/quota/add/",
        {
            "organization": team.organization.pk,
            "region": gpu_catalog.eu_west.pk,
            "gpu_model": gpu_catalog.l40s.pk,
            "on_demand_limit": "2",
            "preemptible_limit": "6",
            "reason": "Onboarding.",
        },
    )
    assert response.status_code == 302
    quota = Quota.objects.get(organization=team.organization)
    assert (quota.on_demand_limit, quota.preemptible_limit) == (2, 6)
    assert QuotaChange.objects.filter(quota=quota).count() == 2


def test_defaults_and_rules_are_edited_in_admin(team, gpu_catalog, admin_client):
    response = admin_client.post(
        "/admin/quotas/quotadefault/add/",
        {
            "region": gpu_catalog.us_east.pk,
            "gpu_model": gpu_catalog.h100.pk,
            "on_demand_limit": "0",
            "preemptible_limit": "0",
        },
    )
    assert response.status_code == 302 and QuotaDefault.objects.count() == 1
    response = admin_client.post(
        "/admin/quotas/autoapprovalrule/add/",
        {
            "name": "Small H100",
            "active": "on",
            "position": "10",
            "gpu_model": gpu_catalog.h100.pk,
            "region": "",
            "kind": "",
            "max_limit": "8",
            "require_verified_email": "on",
            "require_no_unpaid_invoice": "on",
        },
    )
    assert response.status_code == 302
    for page in ["quotadefault", "autoapprovalrule", "quotachange", "quota"]:
        assert admin_client.get(f"/admin/quotas/{page}/").status_code == 200


def test_the_rows_are_the_html_djangos_renderer_writes(
    team, gpu_catalog, submit, staff, admin_client
):
    """The list's rows come from portal/web/templatetags/admin_pages.py: the same cells as
    Django's items_for_result (badge, organization link, ages, who decided)."""
    decided = submit(requested_limit=8)
    services.quota_request_decide(
        quota_request=decided, decision=Decision.DENY, decided_by=staff, message="Not now."
    )
    submit(requested_limit=32)
    AutoApprovalRule.objects.create(name="Small <H100>", gpu_model=gpu_catalog.h100, max_limit=8)
    submit(kind=Kind.PREEMPTIBLE, requested_limit=4)
    submit(kind=Kind.STORAGE, requested_limit=500)
    for query in ["", "?open=yes", "?o=-1"]:
        response = admin_client.get(LIST + query)
        cl = response.context["cl"]
        assert len(cl.result_list) == 4 if not query.startswith("?open") else 2
        assert our_rows(cl) == djangos_rows(cl)
        for row in our_rows(cl):
            assert row in response.text
    rows = "".join(our_rows(admin_client.get(LIST).context["cl"]))
    assert "Rule: Small &lt;H100&gt;" in rows and "Storage (GB)" in rows


def test_the_lists_query_count_is_the_same_at_10_and_200_requests(
    team, gpu_catalog, submit, staff, admin_client
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> int:
        admin_client.get(LIST)
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(LIST).status_code == 200
        return len(captured)

    template = submit(requested_limit=8)
    services.quota_request_decide(
        quota_request=template, decision=Decision.DENY, decided_by=staff, message="Not now."
    )
    template.refresh_from_db()

    def clone(n: int) -> None:
        fields = {
            f.name: getattr(template, f.name)
            for f in QuotaRequest._meta.concrete_fields
            if not f.primary_key
        }
        QuotaRequest.objects.bulk_create([QuotaRequest(**fields) for _ in range(n)])

    clone(9)
    few = count()
    clone(190)
    assert count() == few


def test_the_lists_cells_are_what_django_writes_of_the_same_values(
    team, gpu_catalog, submit, staff, admin_client
):
    """The columns that keep their text between rows (the age's words, the badges) or write
    numbers directly say what timesince, format_html and number_format say."""
    from django.contrib import admin
    from django.utils.formats import number_format
    from django.utils.html import format_html
    from django.utils.timesince import timesince

    from portal.quotas.admin import QuotaRequestAdmin

    model_admin = QuotaRequestAdmin(QuotaRequest, admin.site)
    # As the list reads a row: with the names of its related rows as values.
    request = QuotaRequest.objects.annotate(**QuotaRequestAdmin.list_annotations).get(
        pk=submit(requested_limit=512).pk
    )
    now = timezone.now()
    for age in [
        timedelta(0),
        timedelta(minutes=1),
        timedelta(hours=5),
        timedelta(days=1),
        timedelta(days=9),
        timedelta(days=45),
        timedelta(days=400),
        timedelta(days=800),
    ]:
        request.created_at = now - age - timedelta(seconds=2)
        assert model_admin.age(request) == timesince(request.created_at, depth=1)
    assert model_admin.asked(request) == number_format(512)
    assert model_admin.was(request) == number_format(request.limit_at_submission)
    assert model_admin.state_badge(request) == format_html(
        '<span style="color:#fff;background:{};padding:2px 8px;border-radius:10px;'
        'font-weight:600;white-space:nowrap">{}</span>',
        "#2563eb",
        "Submitted",
    )
    assert model_admin.gpu(request) == format_html(
        '<span title="{}">{}</span>', request.gpu_model.name, request.gpu_model.code.upper()
    )
    assert model_admin.action_checkbox(request) == admin.ModelAdmin(
        QuotaRequest, admin.site
    ).action_checkbox(request)
