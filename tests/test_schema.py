"""The OpenAPI schema is valid, warning-free, and describes what the API really sends."""

import pytest
from django.core.management import call_command

from leads.api.serializers import LeadOutputSerializer, lead_to_dict
from leads.services import lead_create


def test_openapi_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    # Every lead route, mounted at the top level (config/urls.py under()), keeps its own path.
    for path in (
        "/api/v1/leads:",
        "/api/v1/leads/batch:",
        "/api/v1/leads/export:",
        "/api/v1/exports:",
        "/api/v1/leads/{lead_id}:",
        "/api/v1/leads/{lead_id}/notes:",
        "/api/v1/leads/{lead_id}/activity:",
        "/api/v1/leads/{lead_id}/erase:",
        "/api/v1/suppressions/{suppression_id}:",
        "/api/v1/segments/{segment_id}:",
    ):
        assert f"\n  {path}\n" in text, path
    assert "\n  /api/v1:\n" not in text
    assert "Idempotency-Key" in text


@pytest.mark.django_db
def test_fast_lead_rendering_equals_the_documented_serializer(account, owner):
    lead = lead_create(
        account=account,
        actor=None,
        data={
            "email": "Render@Example.com",
            "phone": "+49 30 1234567",
            "country": "de",
            "tags": ["A", "b"],
            "owner": owner.pk,
            "external_id": "x-1",
            "custom_fields": {"n": 1, "ok": True, "s": "t", "z": None},
        },
    ).lead
    twin = lead_create(account=account, actor=None, data={"phone": "+49 30 1234567"}).lead
    assert twin.possible_duplicate_of_id == lead.pk
    for obj in (lead, twin):
        obj.refresh_from_db()
        assert lead_to_dict(obj) == dict(LeadOutputSerializer(obj).data)
