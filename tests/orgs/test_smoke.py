def test_owner_sees_the_members_page_of_their_organization(team, client_for):
    response = client_for(team.owner.user).get("/o/acme/members/")
    assert response.status_code == 200
    assert team.viewer.user.email in response.content.decode()
