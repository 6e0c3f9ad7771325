import pytest


@pytest.mark.django_db
def test_list_leads_answers_200_with_empty_page(api):
    response = api.get("/api/v1/leads")
    assert response.status_code == 200
    assert response.json() == {"results": [], "next_cursor": None, "has_more": False}
