"""Per-lead caps hold for what a merge produces, not only for what one request sends (leads/limits.py):
`add_tags` in a batch update and `on_duplicate=update` merges cannot grow a lead past MAX_TAGS tags or
MAX_CUSTOM_FIELDS custom fields; the item fails with 400 validation_error naming the field."""

from __future__ import annotations

import pytest

from leads.limits import MAX_CUSTOM_FIELDS, MAX_TAGS
from leads.models import Lead

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"


def create(api, **fields) -> dict:
    response = api.post(LEADS, {"email": "cap@acme.test", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_add_tags_past_the_per_lead_cap_fails_the_item_and_keeps_the_lead(api):
    lead = create(api, tags=[f"t{n}" for n in range(MAX_TAGS - 1)])
    response = api.put(f"{LEADS}/batch", {"leads": [{"id": lead["id"], "add_tags": ["new-1", "new-2"]}]}, format="json")
    assert response.status_code == 207
    (item,) = response.json()["results"]
    assert item["status"] == 400 and item["error"]["code"] == "validation_error"
    assert item["error"]["errors"][0]["field"] == "tags"
    assert len(Lead.objects.get(pk=lead["id"]).tags) == MAX_TAGS - 1

    fits = api.put(f"{LEADS}/batch", {"leads": [{"id": lead["id"], "add_tags": ["new-1"]}]}, format="json")
    assert fits.json()["results"][0]["status"] == 200
    assert len(Lead.objects.get(pk=lead["id"]).tags) == MAX_TAGS


def test_an_on_duplicate_update_merge_past_the_tag_cap_fails_that_item_only(api):
    create(api, tags=[f"t{n}" for n in range(MAX_TAGS)])
    response = api.post(
        f"{LEADS}/batch?on_duplicate=update",
        {"leads": [{"email": "cap@acme.test", "tags": ["one-more"]}, {"email": "other@acme.test"}]},
        format="json",
    )
    assert response.status_code == 207
    first, second = response.json()["results"]
    assert first["status"] == 400 and first["error"]["errors"][0]["field"] == "tags"
    assert second["status"] == 201
    assert "one-more" not in Lead.objects.get(email="cap@acme.test").tags


def test_a_single_update_merge_past_the_custom_fields_cap_is_400(api):
    lead = create(api, custom_fields={f"k{n}": n for n in range(MAX_CUSTOM_FIELDS)})
    response = api.post(
        f"{LEADS}?on_duplicate=update", {"email": "cap@acme.test", "custom_fields": {"extra": 1}}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "custom_fields"
    assert "extra" not in Lead.objects.get(pk=lead["id"]).custom_fields
