from pathlib import Path

import pytest
from django.conf import settings

from core.docs import render_errors_markdown
from core.errors import ERROR_CODES, ApplicationError


def test_docs_errors_md_is_generated_from_the_catalogue():
    committed = (Path(settings.BASE_DIR) / "docs" / "errors.md").read_text()
    assert committed == render_errors_markdown(), "run `python manage.py errors_doc`"


def test_every_catalogued_code_has_a_4xx_or_5xx_status():
    assert all(400 <= status <= 599 for status, _, _ in ERROR_CODES.values())


def test_application_error_refuses_an_undocumented_code():
    with pytest.raises(ValueError):
        ApplicationError("nope", code="made_up_code")


@pytest.mark.django_db
def test_method_not_allowed_is_problem_json_with_allow_header(api):
    response = api.post("/api/v1/me", {}, format="json")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


@pytest.mark.django_db
def test_unsupported_media_type_is_problem_json(api):
    response = api.post("/api/v1/leads", "email=a@b.c", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.django_db
def test_unhandled_exception_is_a_500_problem_without_traceback(api, monkeypatch):
    from leads import selectors

    def boom(**kwargs):
        raise RuntimeError("secret SQL SELECT * FROM leads_lead")

    monkeypatch.setattr(selectors, "lead_list", boom)
    response = api.get("/api/v1/leads")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error"
    assert "SELECT" not in response.content.decode()
    assert body["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_openapi_schema_is_served_and_lists_lead_endpoints(client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/api/v1/leads", "/api/v1/leads/{lead_id}", "/api/v1/api-keys", "/api/v1/me"} <= set(schema["paths"])
    assert "ApiKeyHeader" in schema["components"]["securitySchemes"]


@pytest.mark.django_db
def test_docs_page_serves_swagger_ui_from_the_sidecar_package(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"drf_spectacular_sidecar" in response.content
