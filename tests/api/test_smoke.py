from tests.api.conftest import assert_error


def test_token_endpoint(api, team):
    response = api.get("/token/")
    assert response.status_code == 200, response.content
    assert response.json()["organization"]["slug"] == team.organization.slug


def test_no_token(client, db):
    assert_error(client.get("/api/v1/token/"), 401, "not_authenticated")
