"""REST twins of the MCP notes and segments: /leads/{id}/notes and /segments (§4.2, §4.3)."""

from __future__ import annotations

import pytest

from leads.batch import leads_batch_delete
from leads.models import Note, Segment

from .factories import LeadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(account):
    return LeadFactory(account=account, country="DE", status="new")


def test_add_note_answers_201_and_lists_it(api, lead, owner):
    response = api.post(f"/api/v1/leads/{lead.pk}/notes", {"body": "  Called, wants a demo.  "}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["body"] == "Called, wants a demo." and body["lead"] == str(lead.pk)
    listed = api.get(f"/api/v1/leads/{lead.pk}/notes").json()
    assert [n["id"] for n in listed["results"]] == [body["id"]]
    assert listed["has_more"] is False and listed["next_cursor"] is None


def test_notes_are_paged_oldest_first_with_a_cursor(api, lead):
    for text in ("one", "two", "three"):
        api.post(f"/api/v1/leads/{lead.pk}/notes", {"body": text}, format="json")
    first = api.get(f"/api/v1/leads/{lead.pk}/notes?limit=2").json()
    assert [n["body"] for n in first["results"]] == ["one", "two"] and first["has_more"] is True
    rest = api.get(f"/api/v1/leads/{lead.pk}/notes?limit=2&cursor={first['next_cursor']}").json()
    assert [n["body"] for n in rest["results"]] == ["three"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({}, "validation_error"),
        ({"body": "   "}, "validation_error"),
        ({"body": "x" * 10_001}, "validation_error"),
        ({"body": "x", "lead": "y"}, "read_only_field"),
        ({"body": "x", "colour": 1}, "unknown_field"),
    ],
)
def test_add_note_rejects_bad_bodies(api, lead, payload, code):
    response = api.post(f"/api/v1/leads/{lead.pk}/notes", payload, format="json")
    assert response.status_code == 400 and response.json()["code"] == code
    assert not Note.objects.exists()


def test_notes_of_another_accounts_lead_are_404(other_api, lead):
    assert other_api.get(f"/api/v1/leads/{lead.pk}/notes").status_code == 404
    assert other_api.post(f"/api/v1/leads/{lead.pk}/notes", {"body": "x"}, format="json").status_code == 404
    assert not Note.objects.exists()


def test_adding_a_note_needs_leads_write(make_client, account, lead):
    reader = make_client(account, scopes=["leads:read"])
    response = reader.post(f"/api/v1/leads/{lead.pk}/notes", {"body": "x"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert reader.get(f"/api/v1/leads/{lead.pk}/notes").status_code == 200


def test_add_note_honours_idempotency_key(api, lead):
    headers = {"HTTP_IDEMPOTENCY_KEY": "note-1"}
    first = api.post(f"/api/v1/leads/{lead.pk}/notes", {"body": "x"}, format="json", **headers)
    again = api.post(f"/api/v1/leads/{lead.pk}/notes", {"body": "x"}, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and Note.objects.count() == 1


def test_deleting_leads_deletes_their_notes(api, account, lead):
    api.post(f"/api/v1/leads/{lead.pk}/notes", {"body": "x"}, format="json")
    leads_batch_delete(account=account, actor=None, ids=[lead.pk])
    assert not Note.objects.exists()


def test_segment_crud(api):
    created = api.post(
        "/api/v1/segments", {"name": "Hot DE", "filters": {"country": "DE", "tag": ["hot"]}}, format="json"
    )
    assert created.status_code == 201
    segment = created.json()
    assert created["Location"].endswith(f"/api/v1/segments/{segment['id']}")
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["filters"] == {"country": "DE", "tag": ["hot"]}
    patched = api.patch(f"/api/v1/segments/{segment['id']}", {"name": "German"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "German"
    assert [s["name"] for s in api.get("/api/v1/segments").json()["results"]] == ["German"]
    assert api.delete(f"/api/v1/segments/{segment['id']}").status_code == 204
    assert api.get(f"/api/v1/segments/{segment['id']}").status_code == 404


def test_segment_names_are_unique_per_account(api):
    api.post("/api/v1/segments", {"name": "A", "filters": {}}, format="json")
    response = api.post("/api/v1/segments", {"name": "A", "filters": {}}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "conflict"


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        ({"stauts": "new"}, "unknown_filter"),
        ({"score__gte": "high"}, "invalid_filter"),
        ({"status": "maybe"}, "invalid_filter"),
        ({"sort": "-score"}, "unknown_filter"),
        ({"segment": 1}, "invalid_filter"),
    ],
)
def test_invalid_segment_filters_are_400(api, filters, code):
    response = api.post("/api/v1/segments", {"name": "bad", "filters": filters}, format="json")
    assert response.status_code == 400 and response.json()["code"] == code
    assert not Segment.objects.exists()


def test_invalid_filters_on_update_are_400_and_keep_the_segment(api, account):
    segment = Segment.objects.create(account=account, name="s", filters={"country": "DE"})
    response = api.patch(f"/api/v1/segments/{segment.pk}", {"filters": {"nope": 1}}, format="json")
    assert response.status_code == 400
    segment.refresh_from_db()
    assert segment.filters == {"country": "DE"}


def test_segment_filter_on_the_lead_list_applies_the_saved_filters(api, account):
    de_hot = LeadFactory(account=account, country="DE", tags=["hot"], status="new")
    LeadFactory(account=account, country="DE", tags=[], status="new")
    de_hot_lost = LeadFactory(account=account, country="DE", tags=["hot"], status="lost")
    LeadFactory(account=account, country="US", tags=["hot"])
    segment = Segment.objects.create(account=account, name="s", filters={"country": "DE", "tag": ["hot"]})
    ids = {r["id"] for r in api.get(f"/api/v1/leads?segment={segment.pk}").json()["results"]}
    assert ids == {str(de_hot.pk), str(de_hot_lost.pk)}
    ids = {r["id"] for r in api.get(f"/api/v1/leads?segment={segment.pk}&status=new").json()["results"]}
    assert ids == {str(de_hot.pk)}


@pytest.mark.parametrize("value", ["999999", "abc"])
def test_unknown_or_malformed_segment_on_the_list_is_400_invalid_filter(api, value):
    response = api.get(f"/api/v1/leads?segment={value}")
    assert response.status_code == 400 and response.json()["code"] == "invalid_filter"


def test_another_accounts_segment_is_404_and_unusable_as_a_filter(api, other_api, account):
    segment = Segment.objects.create(account=account, name="s", filters={"country": "DE"})
    assert other_api.get(f"/api/v1/segments/{segment.pk}").status_code == 404
    assert other_api.patch(f"/api/v1/segments/{segment.pk}", {"name": "x"}, format="json").status_code == 404
    assert other_api.delete(f"/api/v1/segments/{segment.pk}").status_code == 404
    assert other_api.get("/api/v1/segments").json()["results"] == []
    response = other_api.get(f"/api/v1/leads?segment={segment.pk}")
    assert response.status_code == 400 and response.json()["code"] == "invalid_filter"
    assert Segment.objects.filter(pk=segment.pk, name="s").exists()


def test_segment_writes_need_leads_write(make_client, account):
    reader = make_client(account, scopes=["leads:read"])
    response = reader.post("/api/v1/segments", {"name": "x", "filters": {}}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert reader.get("/api/v1/segments").status_code == 200
