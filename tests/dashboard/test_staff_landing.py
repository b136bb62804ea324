"""The operator's staff land on the admin's overview, not on the customers' "no organization"."""

from tests.factories import PASSWORD, UserFactory


def test_staff_who_sign_in_land_on_the_admin_overview(client, db):
    staff = UserFactory(email="ops@backfill.example", is_staff=True, two_factor=False)

    response = client.post("/accounts/login/", {"login": staff.email, "password": PASSWORD})

    assert response["Location"] == "/admin/overview/"


def test_staff_in_no_organization_are_sent_from_the_dashboard_to_the_overview(client, db):
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/dashboard/")["Location"] == "/admin/overview/"


def test_a_customer_without_an_organization_is_offered_to_create_one(client, db):
    client.force_login(UserFactory())
    body = client.get("/dashboard/").content.decode()
    assert "You are not in an organization yet" in body
