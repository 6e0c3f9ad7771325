"""The single-lead endpoints (§4.1, §4.2, §4.4, §4.6): POST/GET /leads, GET/PUT/PATCH/DELETE /leads/{id}."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from leads.models import Lead

from .factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"

LEAD_FIELDS = {
    "id",
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "website",
    "city",
    "phone",
    "country",
    "source",
    "status",
    "score",
    "score_breakdown",
    "tags",
    "owner",
    "external_id",
    "custom_fields",
    "possible_duplicate_of",
    "created_at",
    "updated_at",
    "scored_at",
}


def detail_url(lead_id) -> str:
    return f"{LEADS}/{lead_id}"


def create(client, data, *, query: str = "", **extra):
    return client.post(f"{LEADS}{query}", data, format="json", **extra)


def create_ok(client, data) -> dict:
    response = create(client, data)
    assert response.status_code == 201, response.content
    return response.json()


def assert_problem(response, status: int, code: str) -> dict:
    """Every error is RFC 9457 problem+json with a catalogued code and the request id (§4.6)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert code in ERROR_CODES
    assert ERROR_CODES[code][0] == status
    assert body["status"] == status
    assert body["type"] == PROBLEM_TYPE_BASE + code
    assert body["title"] and body["detail"]
    assert body["request_id"]
    assert body["request_id"] == response["X-Request-ID"]
    return body


def error_fields(body: dict) -> set[str | None]:
    return {error["field"] for error in body.get("errors", [])}


def db_lead(lead_id) -> Lead:
    return Lead.objects.get(pk=lead_id)


# --- create --------------------------------------------------------------------------------------


def test_create_answers_201_with_location_etag_and_every_lead_field(api, account):
    response = create(api, {"email": "jane@example.com", "first_name": "Jane"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == LEAD_FIELDS
    lead = db_lead(body["id"])
    assert lead.account_id == account.pk
    assert response["Location"] == f"http://testserver/api/v1/leads/{lead.pk}"
    assert response["ETag"] == lead.etag
    assert body["status"] == "new"
    assert body["score"] == 0
    assert body["score_breakdown"] == []
    assert body["tags"] == []
    assert body["custom_fields"] == {}
    assert body["owner"] is None
    assert body["external_id"] is None
    assert body["possible_duplicate_of"] is None
    assert body["scored_at"] is None
    assert body["created_at"] and body["updated_at"]


def test_create_location_points_at_a_readable_lead(api):
    response = create(api, {"email": "loc@example.com"})
    followed = api.get(response["Location"])
    assert followed.status_code == 200
    assert followed.json()["id"] == response.json()["id"]


def test_create_accepts_a_trailing_slash_without_redirecting(api):
    response = api.post(f"{LEADS}/", {"email": "slash@example.com"}, format="json")
    assert response.status_code == 201


def test_create_normalizes_email_phone_country_and_tags_in_the_response(api):
    body = create_ok(
        api,
        {
            "email": "  Jane.Doe@Example.COM ",
            "phone": "030 1234567",
            "country": "de",
            "tags": ["VIP", "vip", " Hot Lead "],
            "first_name": "  Jane ",
        },
    )
    assert body["email"] == "jane.doe@example.com"
    assert body["phone"] == "+49301234567"
    assert body["country"] == "DE"
    assert body["tags"] == ["vip", "hot lead"]
    assert body["first_name"] == "Jane"
    lead = db_lead(body["id"])
    assert (lead.email, lead.phone, lead.country, lead.tags) == (
        "jane.doe@example.com",
        "+49301234567",
        "DE",
        ["vip", "hot lead"],
    )


def test_create_keeps_an_unparseable_phone_as_sent(api):
    body = create_ok(api, {"phone": " call me maybe "})
    assert body["phone"] == "call me maybe"


def test_create_stores_all_writable_fields(api, owner):
    data = {
        "email": "full@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "job_title": "CTO",
        "website": "https://example.com",
        "city": "London",
        "phone": "+44 20 7946 0958",
        "country": "gb",
        "source": "partner:acme",
        "status": "qualified",
        "tags": ["b", "a"],
        "owner": owner.pk,
        "external_id": "crm-1",
        "custom_fields": {"plan": "gold", "seats": 12, "trial": True, "note": None},
    }
    body = create_ok(api, data)
    assert body["phone"] == "+442079460958"
    assert body["country"] == "GB"
    for name in (
        "first_name",
        "last_name",
        "company",
        "job_title",
        "website",
        "city",
        "source",
        "status",
        "tags",
        "owner",
        "external_id",
        "custom_fields",
    ):
        assert body[name] == data[name], name


@pytest.mark.parametrize("identity", [{"email": "a@example.com"}, {"phone": "+16502530000"}, {"external_id": "x-1"}])
def test_create_succeeds_with_any_one_identity_field(api, identity):
    create_ok(api, identity)


@pytest.mark.parametrize(
    "data",
    [
        {"first_name": "No", "last_name": "Identity"},
        {},
        {"email": "", "phone": "", "external_id": ""},
        {"email": None, "external_id": None, "company": "Acme"},
        {"external_id": "   "},
    ],
)
def test_create_without_email_phone_or_external_id_is_a_validation_error(api, data):
    body = assert_problem(create(api, data), 400, "validation_error")
    assert {"email", "phone", "external_id"} <= error_fields(body)
    assert Lead.objects.count() == 0


def test_create_with_an_unknown_field_is_unknown_field_naming_it(api):
    body = assert_problem(create(api, {"email": "u@example.com", "favourite_colour": "blue"}), 400, "unknown_field")
    assert "favourite_colour" in error_fields(body)
    assert Lead.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", 99),
        ("id", "0b9f4c1e-5d8a-4f3e-9c2b-7a6d5e4f3c2b"),
        ("score_breakdown", []),
        ("possible_duplicate_of", None),
        ("created_at", "2024-01-01T00:00:00Z"),
    ],
)
def test_create_writing_a_read_only_field_is_read_only_field(api, field, value):
    body = assert_problem(create(api, {"email": "ro@example.com", field: value}), 400, "read_only_field")
    assert field in error_fields(body)
    assert Lead.objects.count() == 0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "ok@example.com", "status": "hot"}, "status"),
        ({"email": "ok@example.com", "country": "XX"}, "country"),
        ({"email": "ok@example.com", "tags": "vip"}, "tags"),
        ({"email": "ok@example.com", "custom_fields": {"nested": {"a": 1}}}, "custom_fields.nested"),
        ({"email": "ok@example.com", "custom_fields": ["a"]}, "custom_fields"),
        ({"email": "ok@example.com", "owner": "someone"}, "owner"),
    ],
)
def test_create_with_an_invalid_value_is_a_validation_error_naming_the_field(api, data, field):
    body = assert_problem(create(api, data), 400, "validation_error")
    assert field in error_fields(body)
    assert Lead.objects.count() == 0


def test_create_with_an_owner_from_another_account_is_a_validation_error(api, other_account):
    stranger = MembershipFactory(account=other_account, user=UserFactory(email="stranger@globex.test")).user
    body = assert_problem(create(api, {"email": "o@example.com", "owner": stranger.pk}), 400, "validation_error")
    assert "owner" in error_fields(body)
    assert Lead.objects.count() == 0


def test_create_with_an_owner_that_is_no_user_is_a_validation_error(api):
    body = assert_problem(create(api, {"email": "o@example.com", "owner": 987654}), 400, "validation_error")
    assert "owner" in error_fields(body)


def test_create_with_an_owner_who_is_a_member_succeeds(api, owner):
    body = create_ok(api, {"email": "o@example.com", "owner": owner.pk})
    assert body["owner"] == owner.pk


def test_create_with_a_json_list_body_is_a_400_problem(api):
    response = create(api, [{"email": "list@example.com"}])
    body = response.json()
    assert_problem(response, 400, body.get("code"))
    assert body["code"] in {"malformed_request", "validation_error"}
    assert Lead.objects.count() == 0


@pytest.mark.parametrize("raw", ['{"email": "broken@example.com"', "not json", ""])
def test_create_with_invalid_json_is_malformed_request(api, raw):
    response = api.generic("POST", LEADS, raw, content_type="application/json")
    if raw == "":
        # An empty body is an empty object: it fails identity validation instead.
        assert_problem(response, 400, "validation_error")
    else:
        assert_problem(response, 400, "malformed_request")
    assert Lead.objects.count() == 0


@pytest.mark.parametrize("raw", ["null", '"a string"', "42", "true"])
def test_create_with_a_json_body_that_is_not_an_object_is_a_400_problem(api, raw):
    response = api.generic("POST", LEADS, raw, content_type="application/json")
    body = response.json()
    assert_problem(response, 400, body.get("code"))
    assert body["code"] in {"malformed_request", "validation_error"}
    assert Lead.objects.count() == 0


def test_create_with_a_non_json_content_type_is_unsupported_media_type(api):
    response = api.generic("POST", LEADS, "email=a@example.com", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported_media_type")


# --- read ----------------------------------------------------------------------------------------


def test_get_one_lead_answers_with_its_etag(api):
    created = create(api, {"email": "get@example.com"})
    response = api.get(detail_url(created.json()["id"]))
    assert response.status_code == 200
    assert response.json() == created.json()
    assert response["ETag"] == created["ETag"]


def test_get_one_lead_answers_json_with_drf_s_headers(api):
    created = create(api, {"email": "headers@example.com", "tags": ["a"], "custom_fields": {"n": 1}})
    response = api.get(detail_url(created.json()["id"]))
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == "GET, PUT, PATCH, DELETE, HEAD, OPTIONS"
    assert response["ETag"] == created["ETag"]
    assert response.json() == created.json()
    assert int(response["X-RateLimit-Remaining"]) >= 0 and response["Cache-Control"] == "private, no-cache"


def test_get_with_matching_if_none_match_answers_304_without_a_body(api):
    created = create(api, {"email": "cache@example.com"})
    response = api.get(detail_url(created.json()["id"]), HTTP_IF_NONE_MATCH=created["ETag"])
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == created["ETag"]


def test_get_with_stale_if_none_match_answers_200(api):
    created = create(api, {"email": "cache@example.com"})
    lead_id = created.json()["id"]
    api.patch(detail_url(lead_id), {"city": "Berlin"}, format="json")
    response = api.get(detail_url(lead_id), HTTP_IF_NONE_MATCH=created["ETag"])
    assert response.status_code == 200
    assert response.json()["city"] == "Berlin"
    assert response["ETag"] != created["ETag"]


def test_get_with_stale_if_match_is_a_412_problem_naming_the_current_etag(api):
    created = create(api, {"email": "cache@example.com"})
    lead_id = created.json()["id"]
    current = api.patch(detail_url(lead_id), {"city": "Berlin"}, format="json")["ETag"]
    response = api.get(detail_url(lead_id), HTTP_IF_MATCH=created["ETag"])
    assert_problem(response, 412, "precondition_failed")
    assert response.json()["current_etag"] == current
    assert api.get(detail_url(lead_id), HTTP_IF_MATCH=current).status_code == 200


def test_get_unknown_id_is_not_found(api):
    assert_problem(api.get(detail_url(uuid.uuid4())), 404, "not_found")


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000Z"])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_malformed_id_is_not_found_on_every_method(api, method, bad_id):
    response = getattr(api, method)(
        detail_url(bad_id), {"city": "x"} if method in ("put", "patch") else None, format="json"
    )
    assert_problem(response, 404, "not_found")


# --- update --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_changes_only_the_fields_sent_and_the_etag(api, method):
    created = create(
        api,
        {
            "email": "upd@example.com",
            "first_name": "Jane",
            "company": "Acme",
            "tags": ["a"],
            "custom_fields": {"k": "v"},
        },
    )
    before = created.json()
    response = getattr(api, method)(
        detail_url(before["id"]), {"company": "Globex", "status": "contacted"}, format="json"
    )
    assert response.status_code == 200
    after = response.json()
    assert after["company"] == "Globex"
    assert after["status"] == "contacted"
    for name in LEAD_FIELDS - {"company", "status", "updated_at"}:
        assert after[name] == before[name], name
    assert response["ETag"] != created["ETag"]
    lead = db_lead(before["id"])
    assert response["ETag"] == lead.etag
    assert (lead.company, lead.status, lead.first_name, lead.email) == (
        "Globex",
        "contacted",
        "Jane",
        "upd@example.com",
    )


def test_update_with_no_changes_keeps_the_etag(api):
    created = create(api, {"email": "same@example.com", "city": "Paris"})
    response = api.patch(detail_url(created.json()["id"]), {"city": "Paris"}, format="json")
    assert response.status_code == 200
    assert response["ETag"] == created["ETag"]


def test_update_normalizes_like_create(api):
    created = create_ok(api, {"email": "n@example.com", "country": "us"})
    response = api.patch(
        detail_url(created["id"]),
        {
            "email": " N.New@Example.com ",
            "phone": "(650) 253-0000",
            "tags": ["X", "x", "Y"],
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "n.new@example.com"
    assert body["phone"] == "+16502530000"  # the lead's stored country is the hint
    assert body["tags"] == ["x", "y"]


def test_update_replaces_tags_and_custom_fields(api):
    created = create_ok(api, {"email": "r@example.com", "tags": ["a", "b"], "custom_fields": {"x": 1, "y": 2}})
    body = api.patch(detail_url(created["id"]), {"tags": ["c"], "custom_fields": {"z": 3}}, format="json").json()
    assert body["tags"] == ["c"]
    assert body["custom_fields"] == {"z": 3}


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_with_a_stale_if_match_is_precondition_failed_and_changes_nothing(api, method):
    created = create(api, {"email": "etag@example.com", "city": "Paris"})
    lead_id = created.json()["id"]
    stale = created["ETag"]
    assert api.patch(detail_url(lead_id), {"city": "Rome"}, format="json").status_code == 200
    version = db_lead(lead_id).version

    response = getattr(api, method)(detail_url(lead_id), {"city": "Oslo"}, format="json", HTTP_IF_MATCH=stale)
    assert_problem(response, 412, "precondition_failed")
    lead = db_lead(lead_id)
    assert lead.city == "Rome"
    assert lead.version == version


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_with_the_current_if_match_succeeds(api, method):
    created = create(api, {"email": "etag@example.com", "city": "Paris"})
    lead_id = created.json()["id"]
    response = getattr(api, method)(detail_url(lead_id), {"city": "Oslo"}, format="json", HTTP_IF_MATCH=created["ETag"])
    assert response.status_code == 200
    assert response.json()["city"] == "Oslo"
    assert db_lead(lead_id).city == "Oslo"


def test_update_with_if_match_star_succeeds(api):
    lead_id = create_ok(api, {"email": "star@example.com"})["id"]
    response = api.patch(detail_url(lead_id), {"city": "Oslo"}, format="json", HTTP_IF_MATCH="*")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ({"score": 50}, "read_only_field", "score"),
        ({"id": "0b9f4c1e-5d8a-4f3e-9c2b-7a6d5e4f3c2b"}, "read_only_field", "id"),
        ({"colour": "red"}, "unknown_field", "colour"),
        ({"status": "hot"}, "validation_error", "status"),
        ({"email": "nope"}, "validation_error", "email"),
        ({"country": "XX"}, "validation_error", "country"),
    ],
)
def test_update_with_bad_input_is_rejected_and_changes_nothing(api, data, code, field):
    lead_id = create_ok(api, {"email": "bad@example.com", "country": "FR"})["id"]
    body = assert_problem(api.patch(detail_url(lead_id), data, format="json"), 400, code)
    assert field in error_fields(body)
    lead = db_lead(lead_id)
    assert (lead.email, lead.country, lead.status, lead.score, lead.version) == (
        "bad@example.com",
        "FR",
        "new",
        0,
        1,
    )


def test_update_that_removes_the_last_identity_is_a_validation_error(api):
    lead_id = create_ok(api, {"email": "only@example.com"})["id"]
    assert_problem(api.patch(detail_url(lead_id), {"email": None}, format="json"), 400, "validation_error")
    assert db_lead(lead_id).email == "only@example.com"


def test_update_owner_to_a_non_member_is_a_validation_error(api, other_account):
    stranger = MembershipFactory(account=other_account).user
    lead_id = create_ok(api, {"email": "own@example.com"})["id"]
    body = assert_problem(
        api.patch(detail_url(lead_id), {"owner": stranger.pk}, format="json"), 400, "validation_error"
    )
    assert "owner" in error_fields(body)
    assert db_lead(lead_id).owner_id is None


def test_update_with_a_json_list_body_is_a_400_problem(api):
    lead_id = create_ok(api, {"email": "l@example.com"})["id"]
    response = api.patch(detail_url(lead_id), [{"city": "x"}], format="json")
    body = response.json()
    assert_problem(response, 400, body.get("code"))
    assert body["code"] in {"malformed_request", "validation_error"}


def test_update_with_invalid_json_is_malformed_request(api):
    lead_id = create_ok(api, {"email": "j@example.com"})["id"]
    response = api.generic("PATCH", detail_url(lead_id), "{not json", content_type="application/json")
    assert_problem(response, 400, "malformed_request")


def test_updating_email_to_another_leads_email_is_duplicate_lead(api):
    first = create_ok(api, {"email": "first@example.com"})
    second = create_ok(api, {"email": "second@example.com"})
    body = assert_problem(
        api.patch(detail_url(second["id"]), {"email": " FIRST@example.com "}, format="json"),
        409,
        "duplicate_lead",
    )
    assert body["existing_id"] == first["id"]
    assert db_lead(second["id"]).email == "second@example.com"


def test_updating_external_id_to_another_leads_external_id_is_duplicate_lead(api):
    first = create_ok(api, {"external_id": "crm-1"})
    second = create_ok(api, {"external_id": "crm-2"})
    body = assert_problem(
        api.patch(detail_url(second["id"]), {"external_id": "crm-1"}, format="json"), 409, "duplicate_lead"
    )
    assert body["existing_id"] == first["id"]
    assert db_lead(second["id"]).external_id == "crm-2"


def test_updating_external_id_to_another_leads_external_id_is_duplicate_lead_when_both_have_emails(api):
    first = create_ok(api, {"email": "a@example.com", "external_id": "crm-a"})
    second = create_ok(api, {"email": "b@example.com", "external_id": "crm-b"})
    body = assert_problem(
        api.patch(detail_url(second["id"]), {"external_id": "crm-a"}, format="json"), 409, "duplicate_lead"
    )
    assert body["existing_id"] == first["id"]
    assert db_lead(second["id"]).external_id == "crm-b"


def test_on_duplicate_update_that_would_take_a_third_leads_external_id_is_duplicate_lead(api):
    by_email = create_ok(api, {"email": "a@example.com", "external_id": "crm-a"})
    by_external_id = create_ok(api, {"email": "b@example.com", "external_id": "crm-b"})
    response = create(
        api, {"email": "a@example.com", "external_id": "crm-b", "city": "Rome"}, query="?on_duplicate=update"
    )
    body = assert_problem(response, 409, "duplicate_lead")
    assert body["existing_id"] == by_external_id["id"]
    lead = db_lead(by_email["id"])
    assert (lead.external_id, lead.city) == ("crm-a", "")


# --- delete --------------------------------------------------------------------------------------


def test_delete_answers_204_and_the_lead_is_gone(api):
    lead_id = create_ok(api, {"email": "del@example.com"})["id"]
    response = api.delete(detail_url(lead_id))
    assert response.status_code == 204
    assert response.content == b""
    assert not Lead.objects.filter(pk=lead_id).exists()
    assert_problem(api.get(detail_url(lead_id)), 404, "not_found")
    assert_problem(api.delete(detail_url(lead_id)), 404, "not_found")


def test_delete_with_a_stale_if_match_is_precondition_failed_and_keeps_the_lead(api):
    created = create(api, {"email": "del@example.com"})
    lead_id = created.json()["id"]
    api.patch(detail_url(lead_id), {"city": "Rome"}, format="json")
    assert_problem(api.delete(detail_url(lead_id), HTTP_IF_MATCH=created["ETag"]), 412, "precondition_failed")
    assert Lead.objects.filter(pk=lead_id).exists()


def test_deleted_email_can_be_created_again(api):
    lead_id = create_ok(api, {"email": "again@example.com"})["id"]
    api.delete(detail_url(lead_id))
    assert create_ok(api, {"email": "again@example.com"})["id"] != lead_id


# --- tenancy -------------------------------------------------------------------------------------


@pytest.fixture
def foreign_lead(other_api) -> dict:
    """A lead of the other account, created through its own API."""
    return create_ok(other_api, {"email": "secret@globex.test", "city": "Springfield", "tags": ["x"]})


def test_another_accounts_lead_is_not_found_on_get(api, foreign_lead):
    body = assert_problem(api.get(detail_url(foreign_lead["id"])), 404, "not_found")
    assert "secret@globex.test" not in str(body)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_another_accounts_lead_is_not_found_on_update_and_stays_unchanged(api, foreign_lead, method):
    response = getattr(api, method)(detail_url(foreign_lead["id"]), {"city": "Hijacked", "tags": []}, format="json")
    assert_problem(response, 404, "not_found")
    lead = db_lead(foreign_lead["id"])
    assert (lead.city, lead.tags, lead.version) == ("Springfield", ["x"], 1)


def test_another_accounts_lead_is_not_found_on_delete_and_is_not_deleted(api, foreign_lead):
    assert_problem(api.delete(detail_url(foreign_lead["id"])), 404, "not_found")
    assert Lead.objects.filter(pk=foreign_lead["id"]).exists()


def test_another_accounts_lead_is_not_found_even_with_if_match_star(api, foreign_lead):
    response = api.delete(detail_url(foreign_lead["id"]), HTTP_IF_MATCH="*")
    assert_problem(response, 404, "not_found")
    assert Lead.objects.filter(pk=foreign_lead["id"]).exists()


def test_the_same_email_and_external_id_in_another_account_are_allowed(api, other_api, account, other_account):
    mine = create_ok(api, {"email": "shared@example.com", "external_id": "crm-9"})
    theirs = create(other_api, {"email": "SHARED@example.com", "external_id": "crm-9"})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert Lead.objects.filter(account=account).count() == 1
    assert Lead.objects.filter(account=other_account).count() == 1


def test_soft_duplicates_are_not_matched_across_accounts(api, other_api):
    create_ok(other_api, {"email": "a@globex.test", "phone": "+16502530000"})
    body = create_ok(api, {"email": "b@acme.test", "phone": "+16502530000"})
    assert body["possible_duplicate_of"] is None


# --- deduplication -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["dup@example.com", "DUP@Example.com", "  dup@example.com  ", " Dup@EXAMPLE.COM"])
def test_create_with_an_existing_email_is_duplicate_lead_with_existing_id(api, variant):
    first = create_ok(api, {"email": "dup@example.com", "city": "Paris"})
    body = assert_problem(create(api, {"email": variant, "city": "Rome"}), 409, "duplicate_lead")
    assert body["existing_id"] == first["id"]
    assert Lead.objects.count() == 1
    assert db_lead(first["id"]).city == "Paris"


def test_create_with_an_existing_external_id_is_duplicate_lead_with_existing_id(api):
    first = create_ok(api, {"external_id": "crm-42", "email": "one@example.com"})
    body = assert_problem(create(api, {"external_id": " crm-42 ", "email": "two@example.com"}), 409, "duplicate_lead")
    assert body["existing_id"] == first["id"]
    assert Lead.objects.count() == 1


def test_on_duplicate_skip_returns_the_existing_lead_unchanged(api):
    created = create(api, {"email": "skip@example.com", "city": "Paris", "tags": ["a"], "custom_fields": {"k": 1}})
    first = created.json()
    response = create(
        api,
        {"email": "SKIP@example.com", "city": "Rome", "tags": ["b"], "custom_fields": {"j": 2}},
        query="?on_duplicate=skip",
    )
    assert response.status_code == 200
    assert response.json() == first
    assert response["ETag"] == created["ETag"]
    lead = db_lead(first["id"])
    assert (lead.city, lead.tags, lead.custom_fields, lead.version) == ("Paris", ["a"], {"k": 1}, 1)
    assert Lead.objects.count() == 1


def test_on_duplicate_skip_creates_when_there_is_no_duplicate(api):
    response = create(api, {"email": "fresh@example.com"}, query="?on_duplicate=skip")
    assert response.status_code == 201
    assert "Location" in response


def test_on_duplicate_update_merges_the_new_fields_into_the_existing_lead(api):
    created = create(
        api,
        {
            "email": "merge@example.com",
            "first_name": "Jane",
            "city": "Paris",
            "tags": ["a", "b"],
            "custom_fields": {"k": 1, "keep": "yes"},
        },
    )
    first = created.json()
    response = create(
        api,
        {
            "email": " Merge@Example.com",
            "city": "Rome",
            "company": "Acme",
            "tags": ["B", "c"],
            "custom_fields": {"k": 2, "new": True},
        },
        query="?on_duplicate=update",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == first["id"]
    assert body["first_name"] == "Jane"  # not sent: kept
    assert body["city"] == "Rome"
    assert body["company"] == "Acme"
    assert body["tags"] == ["a", "b", "c"]
    assert body["custom_fields"] == {"k": 2, "keep": "yes", "new": True}
    assert response["ETag"] != created["ETag"]
    lead = db_lead(first["id"])
    assert response["ETag"] == lead.etag
    assert (lead.city, lead.company, lead.tags) == ("Rome", "Acme", ["a", "b", "c"])
    assert Lead.objects.count() == 1


def test_on_duplicate_update_matches_on_external_id(api):
    first = create_ok(api, {"external_id": "crm-7", "city": "Paris"})
    response = create(api, {"external_id": "crm-7", "city": "Rome"}, query="?on_duplicate=update")
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]
    assert db_lead(first["id"]).city == "Rome"


def test_on_duplicate_update_still_validates_the_merged_fields(api, other_account):
    first = create_ok(api, {"email": "v@example.com"})
    stranger = MembershipFactory(account=other_account).user
    body = assert_problem(
        create(api, {"email": "v@example.com", "owner": stranger.pk}, query="?on_duplicate=update"),
        400,
        "validation_error",
    )
    assert "owner" in error_fields(body)
    assert db_lead(first["id"]).owner_id is None


@pytest.mark.parametrize("value", ["bogus", "UPDATE", "ignore"])
def test_unknown_on_duplicate_is_a_400(api, value):
    body = assert_problem(
        create(api, {"email": "b@example.com"}, query=f"?on_duplicate={value}"), 400, "invalid_parameter"
    )
    assert "on_duplicate" in error_fields(body)
    assert Lead.objects.count() == 0


def test_explicit_on_duplicate_error_is_the_default_behaviour(api):
    first = create_ok(api, {"email": "e@example.com"})
    body = assert_problem(create(api, {"email": "e@example.com"}, query="?on_duplicate=error"), 409, "duplicate_lead")
    assert body["existing_id"] == first["id"]


# --- soft duplicates -----------------------------------------------------------------------------


def test_same_phone_sets_possible_duplicate_of(api):
    first = create_ok(api, {"email": "p1@example.com", "phone": "+1 650-253-0000"})
    second = create_ok(api, {"email": "p2@example.com", "phone": "(650) 253-0000", "country": "US"})
    assert second["phone"] == first["phone"] == "+16502530000"
    assert second["possible_duplicate_of"] == first["id"]
    assert first["possible_duplicate_of"] is None
    assert str(db_lead(second["id"]).possible_duplicate_of_id) == first["id"]


def test_same_name_and_company_sets_possible_duplicate_of(api):
    first = create_ok(api, {"email": "n1@example.com", "first_name": "Jane", "last_name": "Doe", "company": "Acme"})
    second = create_ok(api, {"email": "n2@example.com", "first_name": "JANE", "last_name": "doe", "company": "acme"})
    assert second["possible_duplicate_of"] == first["id"]


@pytest.mark.parametrize(
    "data",
    [
        {"email": "x2@example.com", "phone": "+16502530001"},
        {"email": "x2@example.com", "first_name": "Jane", "last_name": "Doe", "company": "Other Inc"},
        {"email": "x2@example.com", "first_name": "Jane", "last_name": "Doe"},
        {"email": "x2@example.com", "first_name": "John", "last_name": "Doe", "company": "Acme"},
    ],
)
def test_no_soft_match_leaves_possible_duplicate_of_null(api, data):
    create_ok(
        api,
        {
            "email": "x1@example.com",
            "phone": "+16502530000",
            "first_name": "Jane",
            "last_name": "Doe",
            "company": "Acme",
        },
    )
    assert create_ok(api, data)["possible_duplicate_of"] is None


def test_updating_into_a_soft_match_sets_possible_duplicate_of(api):
    first = create_ok(api, {"email": "s1@example.com", "phone": "+16502530000"})
    second = create_ok(api, {"email": "s2@example.com"})
    body = api.patch(detail_url(second["id"]), {"phone": "+1 650 253 0000"}, format="json").json()
    assert body["possible_duplicate_of"] == first["id"]


def test_deleting_the_original_clears_possible_duplicate_of(api):
    first = create_ok(api, {"email": "o1@example.com", "phone": "+16502530000"})
    second = create_ok(api, {"email": "o2@example.com", "phone": "+16502530000"})
    assert api.delete(detail_url(first["id"])).status_code == 204
    assert api.get(detail_url(second["id"])).json()["possible_duplicate_of"] is None


# --- plan limits ---------------------------------------------------------------------------------


@pytest.fixture
def capped_account(account):
    account.plan = "free"
    account.lead_limit_override = 2
    account.save(update_fields=["plan", "lead_limit_override"])
    return account


def test_free_plan_lead_cap_answers_plan_limit_reached_on_the_next_create(api, capped_account):
    create_ok(api, {"email": "c1@example.com"})
    create_ok(api, {"email": "c2@example.com"})
    assert_problem(create(api, {"email": "c3@example.com"}), 403, "plan_limit_reached")
    assert Lead.objects.filter(account=capped_account).count() == 2


def test_at_the_lead_cap_a_duplicate_can_still_be_skipped_or_updated(api, capped_account):
    first = create_ok(api, {"email": "c1@example.com"})
    create_ok(api, {"email": "c2@example.com"})
    assert create(api, {"email": "c1@example.com"}, query="?on_duplicate=skip").status_code == 200
    response = create(api, {"email": "c1@example.com", "city": "Rome"}, query="?on_duplicate=update")
    assert response.status_code == 200
    assert db_lead(first["id"]).city == "Rome"
    assert Lead.objects.filter(account=capped_account).count() == 2


def test_deleting_a_lead_frees_room_under_the_cap(api, capped_account):
    first = create_ok(api, {"email": "c1@example.com"})
    create_ok(api, {"email": "c2@example.com"})
    api.delete(detail_url(first["id"]))
    create_ok(api, {"email": "c3@example.com"})


def test_the_lead_cap_counts_only_the_accounts_own_leads(api, other_api, capped_account):
    create_ok(other_api, {"email": "o1@globex.test"})
    create_ok(other_api, {"email": "o2@globex.test"})
    create_ok(api, {"email": "c1@example.com"})
    create_ok(api, {"email": "c2@example.com"})


# --- errors in general ---------------------------------------------------------------------------


def test_error_responses_echo_the_clients_request_id(api):
    response = api.get(detail_url(uuid.uuid4()), HTTP_X_REQUEST_ID="req-abc-123")
    body = assert_problem(response, 404, "not_found")
    assert body["request_id"] == "req-abc-123"


def test_successful_responses_carry_a_request_id(api):
    response = create(api, {"email": "rid@example.com"})
    assert response["X-Request-ID"]


def test_unsupported_method_on_the_collection_is_a_problem(api):
    response = api.delete(LEADS)
    assert_problem(response, 405, "method_not_allowed")


def _many_sharing(account, count: int, **shared) -> list[Lead]:
    """`count` leads with the same `shared` values, created a minute apart, the oldest in the middle of the
    insertion order (so the earliest is not simply the first row written)."""
    leads = Lead.objects.bulk_create(
        Lead(account=account, email=f"share{i}-{uuid.uuid4().hex[:6]}@example.com", **shared) for i in range(count)
    )
    now = timezone.now()
    for i, lead in enumerate(leads):
        lead.created_at = now - dt.timedelta(days=1 if i == count // 2 else 0, minutes=i)
    Lead.objects.bulk_update(leads, ["created_at"])
    return leads


def test_a_soft_match_is_the_earliest_of_many_sharing_the_phone_or_name(api, account, other_account):
    phone_sharers = _many_sharing(account, 30, phone="+16502530000", first_name="P", last_name="Q", company="R")
    name_sharers = _many_sharing(account, 30, first_name="Jane", last_name="Doe", company="Acme")
    # Another account's lead, older still, is never a match.
    elsewhere = Lead.objects.create(account=other_account, email="x@example.com", phone="+16502530000")
    Lead.objects.filter(pk=elsewhere.pk).update(created_at=timezone.now() - dt.timedelta(days=9))
    by_phone = create_ok(api, {"email": "new1@example.com", "phone": "+1 650 253 0000"})
    assert by_phone["possible_duplicate_of"] == str(phone_sharers[15].pk)
    by_name = create_ok(api, {"email": "new2@example.com", "first_name": "jane", "last_name": "DOE", "company": "acme"})
    assert by_name["possible_duplicate_of"] == str(name_sharers[15].pk)
    # The earliest itself, changed in a soft field, matches the next earliest (never itself): the last
    # inserted, created 29 minutes before the first.
    body = api.patch(detail_url(name_sharers[15].pk), {"first_name": "JANE"}, format="json").json()
    assert body["possible_duplicate_of"] == str(name_sharers[29].pk)


@pytest.mark.postgres
def test_on_postgresql_the_soft_match_lookup_reads_one_index_entry_per_key(account):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from leads.rules import SoftDuplicateIndex

    _many_sharing(account, 300, phone="+16502530000", first_name="Jane", last_name="Doe", company="Acme")
    Lead.objects.bulk_create(  # and many leads that share nothing
        Lead(account=account, email=f"other{i}@example.com", phone=f"+1650{i:07d}", last_name=f"L{i}", company="C")
        for i in range(5000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE leads_lead")
    candidate = {"phone": "+16502530000", "first_name": "Jane", "last_name": "Doe", "company": "Acme"}
    with CaptureQueriesContext(connection) as ctx:
        index = SoftDuplicateIndex(account, [candidate])
    assert len(ctx.captured_queries) == 1
    assert index.find(candidate) is not None
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + ctx.captured_queries[0]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "lead_acct_phone_first_idx" in plan and "lead_acct_soft_dup_first_idx" in plan, plan
    assert "Sort" not in plan and "Seq Scan on leads_lead" not in plan, plan
    assert plan.count("Limit") == 2, plan
