"""/quotas/ and /quota-requests/: the same services as the quota pages."""

import pytest

from portal.quotas import services
from portal.quotas.models import QuotaRequest, QuotaRequestState
from portal.quotas.services import Decision
from tests.api.conftest import assert_error
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

JUSTIFICATION = "Fine-tuning a 70B model for three weeks."


@pytest.fixture
def ask(catalog):
    return {
        "region": "us-east-1",
        "gpu_model": "h100",
        "kind": "on_demand",
        "requested_limit": 32,
        "justification": JUSTIFICATION,
    }


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True)


def test_quotas_list_limits_and_use(team, api, quota, launch):
    launch()

    lines = {(q["region"], q["gpu_model"]): q for q in api.get("/quotas/").json()}

    h100 = lines[("us-east-1", "h100")]
    assert h100["on_demand"] == {"limit": 16, "used": 1, "free": 15}
    assert h100["preemptible"] == {"limit": 8, "used": 0, "free": 8}
    assert h100["offered"] is True and h100["open_requests"] == []


def test_owners_and_admins_ask_for_quota(team, api_as, ask, quota):
    response = api_as(team.admin).post("/quota-requests/", ask)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "submitted"
    assert (body["limit_at_submission"], body["requested_limit"]) == (16, 32)
    assert body["created_by"] == team.admin.user.email
    assert body["messages"] == []
    assert QuotaRequest.objects.get().pk == body["id"]


def test_members_cannot_ask_for_quota(team, api, ask):
    assert_error(api.post("/quota-requests/", ask), 403, "forbidden")
    assert not QuotaRequest.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"region": "mars-1"}, "region"),
        ({"gpu_model": "tpu"}, "gpu_model"),
        ({"requested_limit": -1}, "requested_limit"),
        ({"requested_limit": 100_000}, "requested_limit"),
        ({"requested_limit": "32"}, "requested_limit"),
        ({"kind": "spot"}, "kind"),
        ({"justification": ""}, "justification"),
        ({"justification": "x" * 4001}, "justification"),
    ],
)
def test_bad_requests_are_400_on_the_field(team, api_as, ask, quota, change, field):
    error = assert_error(api_as(team.owner).post("/quota-requests/", {**ask, **change}), 400)

    assert field in error["details"], error
    assert not QuotaRequest.objects.exists()


def test_a_second_open_request_for_the_same_limit_is_409(team, api_as, ask, quota):
    api = api_as(team.owner)
    assert api.post("/quota-requests/", ask).status_code == 201

    assert_error(api.post("/quota-requests/", {**ask, "requested_limit": 24}), 409, "duplicate")


def test_list_get_answer_and_withdraw(team, api_as, ask, quota, staff):
    api = api_as(team.owner)
    created = api.post("/quota-requests/", ask).json()
    services.quota_request_decide(
        quota_request=QuotaRequest.objects.get(),
        decision=Decision.MORE_INFO,
        message="Which model?",
        decided_by=staff,
    )

    listed = api.get("/quota-requests/", {"state": "more_info_needed"}).json()
    assert [r["id"] for r in listed["results"]] == [created["id"]]
    detail = api.get(f"/quota-requests/{created['id']}/").json()
    assert detail["messages"][0]["body"] == "Which model?"
    assert detail["messages"][0]["author"] == "staff"

    answered = api.post(f"/quota-requests/{created['id']}/answer/", {"message": "Llama 3 70B."})
    assert answered.status_code == 200 and answered.json()["state"] == "submitted"
    assert answered.json()["messages"][-1]["body"] == "Llama 3 70B."

    assert_error(
        api.post(f"/quota-requests/{created['id']}/answer/", {"message": "again"}),
        409,
        "invalid_state",
    )
    withdrawn = api.post(f"/quota-requests/{created['id']}/withdraw/")
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert_error(api.post(f"/quota-requests/{created['id']}/withdraw/"), 409, "invalid_state")
    assert QuotaRequest.objects.get().state == QuotaRequestState.WITHDRAWN


def test_an_answer_needs_a_message(team, api_as, ask, quota):
    api = api_as(team.owner)
    created = api.post("/quota-requests/", ask).json()

    error = assert_error(api.post(f"/quota-requests/{created['id']}/answer/", {}), 400)
    assert "message" in error["details"]


def test_another_organizations_request_is_404(team, outsider, api_as, catalog):
    theirs = services.quota_request_submit(
        membership=outsider,
        region="us-east-1",
        gpu_model="h100",
        kind="on_demand",
        requested_limit=8,
        justification=JUSTIFICATION,
    )
    api = api_as(team.owner)

    assert_error(api.get(f"/quota-requests/{theirs.pk}/"), 404, "not_found")
    assert_error(api.post(f"/quota-requests/{theirs.pk}/withdraw/"), 404, "not_found")
    assert_error(
        api.post(f"/quota-requests/{theirs.pk}/answer/", {"message": "hi"}), 404, "not_found"
    )
    assert api.get("/quota-requests/").json()["count"] == 0
    theirs.refresh_from_db()
    assert theirs.state == QuotaRequestState.SUBMITTED


def test_viewers_read_quotas_billing_does_not(team, api_as, quota):
    assert api_as(team.viewer).get("/quotas/").status_code == 200
    assert_error(api_as(team.billing).get("/quotas/"), 403, "forbidden")
    assert_error(api_as(team.billing).get("/quota-requests/"), 403, "forbidden")
