"""The customer's quota pages: who may see and do what, and what they show."""

import re

import pytest
from django.core import mail

from portal.quotas import services
from portal.quotas.models import Kind, QuotaRequest, QuotaRequestState
from portal.quotas.services import Decision
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

ROLES = ["owner", "admin", "member", "billing", "viewer"]
MAY_VIEW = {"owner", "admin", "member", "viewer"}
MAY_REQUEST = {"owner", "admin"}


@pytest.fixture
def open_request(submit):
    return submit(requested_limit=16)


def urls(pk: int) -> dict[str, tuple[str, str, set[str]]]:
    """name -> (method, url, roles allowed)."""
    base = "/o/acme/quotas/"
    return {
        "quotas": ("get", base, MAY_VIEW),
        "new": ("get", f"{base}requests/new/", MAY_REQUEST),
        "detail": ("get", f"{base}requests/{pk}/", MAY_VIEW),
        "answer": ("post", f"{base}requests/{pk}/answer/", MAY_REQUEST),
        "withdraw": ("post", f"{base}requests/{pk}/withdraw/", MAY_REQUEST),
    }


@pytest.mark.parametrize("page", ["quotas", "new", "detail", "answer", "withdraw"])
@pytest.mark.parametrize("role", ROLES)
def test_roles(team, gpu_catalog, open_request, client_for, page, role):
    method, url, allowed = urls(open_request.pk)[page]
    response = getattr(client_for(team.by_role(role).user), method)(url)
    if role not in allowed:
        assert response.status_code == 403
    else:
        assert response.status_code in (200, 302, 400)


@pytest.mark.parametrize("page", ["quotas", "new", "detail", "answer", "withdraw"])
def test_outsiders_get_404_and_strangers_the_login(
    team, outsider, gpu_catalog, open_request, client, client_for, page
):
    method, url, _ = urls(open_request.pk)[page]
    assert getattr(client, method)(url).status_code == 302
    assert "/accounts/login/" in getattr(client, method)(url)["Location"]
    assert getattr(client_for(outsider.user), method)(url).status_code == 404


@pytest.mark.parametrize("page", ["detail", "answer", "withdraw"])
def test_another_organizations_request_is_a_404_under_ones_own_slug(
    team, outsider, gpu_catalog, client_for, page
):
    theirs = services.quota_request_submit(
        membership=outsider,
        region=gpu_catalog.us_east,
        gpu_model=gpu_catalog.h100,
        kind=Kind.ON_DEMAND,
        requested_limit=8,
        justification="Theirs.",
    )
    method, url, _ = urls(theirs.pk)[page]
    assert getattr(client_for(team.owner.user), method)(url).status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == QuotaRequestState.SUBMITTED


@pytest.mark.parametrize("page", ["answer", "withdraw"])
def test_actions_refuse_get(team, gpu_catalog, open_request, client_for, page):
    _, url, _ = urls(open_request.pk)[page]
    assert client_for(team.owner.user).get(url).status_code == 405


def test_quotas_page_shows_limit_use_and_free(team, gpu_catalog, set_limit, client_for):
    set_limit(8)
    set_limit(4, kind=Kind.PREEMPTIBLE)
    services.quota_reserve(
        organization=team.organization,
        region=gpu_catalog.us_east,
        gpu_model=gpu_catalog.h100,
        gpus=3,
        preemptible=False,
    )
    page = client_for(team.viewer.user).get("/o/acme/quotas/").content.decode()
    row = page[page.index('data-testid="limit-us-east-1-h100"') :]
    row = row[: row.index("</tr>")]
    cells = row.split("<td")[3:9]
    numbers = [re.sub(r"<[^>]+>", " ", "<td" + cell).split()[0] for cell in cells]
    assert numbers == ["8", "3", "5", "4", "0", "4"]  # limit, in use, free; twice
    # Places the organization could ask for are listed with zero.
    assert 'data-testid="limit-eu-west-1-l40s"' in page
    assert "History of limits" in page and "Set up by the test." in page
    assert "Request a limit" not in page  # a viewer cannot ask


def test_quotas_page_lists_open_and_past_requests(team, gpu_catalog, submit, staff, client_for):
    denied = submit(requested_limit=64)
    services.quota_request_decide(quota_request=denied, decision=Decision.DENY, decided_by=staff)
    pending = submit(requested_limit=16)
    page = client_for(team.admin.user).get("/o/acme/quotas/").content.decode()
    open_part = page[page.index("Open requests") : page.index("Past requests")]
    past_part = page[page.index("Past requests") : page.index("History of limits")]
    assert f"#{pending.pk}" in open_part and f"#{denied.pk}<" not in open_part
    assert f"#{denied.pk}" in past_part and "Denied" in past_part
    assert "Request a limit" in page


def test_the_form_is_prefilled_from_the_query_string(team, gpu_catalog, client_for):
    page = (
        client_for(team.owner.user)
        .get(
            "/o/acme/quotas/requests/new/",
            {"region": "eu-west-1", "gpu": "l40s", "kind": "preemptible", "limit": "12"},
        )
        .content.decode()
    )
    assert '<option value="eu-west-1" selected>' in page
    assert '<option value="l40s" selected>' in page
    assert re.search(r'<input type="radio" name="kind" value="preemptible"[^>]*checked', page)
    assert 'value="12"' in page


def test_asking_for_a_limit_through_the_form(team, gpu_catalog, client_for):
    response = client_for(team.admin.user).post(
        "/o/acme/quotas/requests/new/",
        {
            "region": "us-east-1",
            "gpu": "h100",
            "kind": "on_demand",
            "requested_limit": "16",
            "justification": "Training run.",
        },
    )
    quota_request = QuotaRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/o/acme/quotas/requests/{quota_request.pk}/"
    assert quota_request.created_by == team.admin.user
    assert quota_request.requested_limit == 16


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"requested_limit": "-4"}, "A limit cannot be negative."),
        ({"requested_limit": "100000"}, "A limit can be at most 512 GPUs."),
        (
            {"requested_limit": "lots"},
            "Give the limit as a whole number of GPUs (or GB for storage).",
        ),
        ({"region": "mars-1"}, "There is no such region. Choose one from the list."),
        ({"gpu": "tpu"}, "There is no such GPU model. Choose one from the list."),
        ({"region": "us-east-1", "gpu": "l40s"}, "GPUs are not offered in us-east-1."),
        ({"justification": ""}, "Write what the GPUs are for and for how long."),
        ({"kind": "spot"}, "Choose the on-demand or the preemptible limit (or the storage limit)."),
    ],
)
def test_bad_input_on_the_form_shows_a_message_and_changes_nothing(
    team, gpu_catalog, client_for, data, message
):
    form = {
        "region": "us-east-1",
        "gpu": "h100",
        "kind": "on_demand",
        "requested_limit": "16",
        "justification": "Training run.",
        **data,
    }
    response = client_for(team.owner.user).post("/o/acme/quotas/requests/new/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not QuotaRequest.objects.exists()


def test_a_second_open_request_is_refused_on_the_form(team, gpu_catalog, open_request, client_for):
    response = client_for(team.owner.user).post(
        "/o/acme/quotas/requests/new/",
        {
            "region": "us-east-1",
            "gpu": "h100",
            "kind": "on_demand",
            "requested_limit": "32",
            "justification": "More.",
        },
    )
    assert response.status_code == 400
    assert f"Request #{open_request.pk} for this limit is still open" in response.content.decode()
    assert QuotaRequest.objects.count() == 1


def test_detail_shows_the_conversation(team, gpu_catalog, open_request, staff, client_for):
    services.quota_request_decide(
        quota_request=open_request,
        decision=Decision.MORE_INFO,
        message="Which model, for how long?",
        decided_by=staff,
    )
    url = f"/o/acme/quotas/requests/{open_request.pk}/"
    page = client_for(team.viewer.user).get(url).content.decode()
    assert "Which model, for how long?" in page
    assert "More information needed" in page
    assert 'data-testid="answer-form"' not in page  # viewers read only
    assert 'data-testid="withdraw"' not in page
    page = client_for(team.owner.user).get(url).content.decode()
    assert 'data-testid="answer-form"' in page and 'data-testid="withdraw"' in page


def test_answering_through_the_page(team, gpu_catalog, open_request, staff, client_for):
    services.quota_request_decide(
        quota_request=open_request, decision=Decision.MORE_INFO, message="Why?", decided_by=staff
    )
    client = client_for(team.admin.user)
    url = f"/o/acme/quotas/requests/{open_request.pk}/answer/"
    empty = client.post(url, {"message": " "})
    assert empty.status_code == 400 and "Write your answer." in empty.content.decode()
    response = client.post(url, {"message": "Three weeks of training."})
    assert response.status_code == 302
    open_request.refresh_from_db()
    assert open_request.state == QuotaRequestState.SUBMITTED
    again = client.post(url, {"message": "And more."})
    assert again.status_code == 400
    assert "not waiting for an answer" in again.content.decode()


def test_withdrawing_through_the_page(team, gpu_catalog, open_request, client_for):
    client = client_for(team.owner.user)
    url = f"/o/acme/quotas/requests/{open_request.pk}/withdraw/"
    assert client.post(url).status_code == 302
    open_request.refresh_from_db()
    assert open_request.state == QuotaRequestState.WITHDRAWN
    page = client.post(url, follow=True).content.decode()
    assert "This request is already withdrawn." in page
    assert mail.outbox == []


@pytest.mark.parametrize("page", ["answer", "withdraw"])
def test_an_outsiders_get_on_an_action_is_a_404_not_a_405(
    team, outsider, gpu_catalog, open_request, client_for, page
):
    _, url, _ = urls(open_request.pk)[page]
    assert client_for(outsider.user).get(url).status_code == 404


def test_the_history_names_each_limit_and_shows_no_other_organizations(
    team, gpu_catalog, set_limit, client_for
):
    other = OrganizationFactory(slug="globex")
    set_limit(8)
    set_limit(4, kind=Kind.PREEMPTIBLE, region=gpu_catalog.eu_west, gpu_model=gpu_catalog.l40s)
    set_limit(99, organization=other)
    page = client_for(team.owner.user).get("/o/acme/quotas/").content.decode()
    history = page[page.index('data-testid="history"') :]
    history = history[: history.index("</table>")]
    rows = [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in history.split("<tr>")[2:]
    ]
    assert len(rows) == 2
    assert "L40S" in rows[0] and "eu-west-1" in rows[0] and "preemptible" in rows[0]
    assert "0 → 4" in rows[0]
    assert "H100" in rows[1] and "us-east-1" in rows[1] and "0 → 8" in rows[1]
    assert "99" not in history
