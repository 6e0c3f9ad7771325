"""Input limits (issue 11, docs/security.md "Input limits"): every limit is a clear problem+json 4xx
that names what is wrong, never a database error or a 500, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import io
import json

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.exceptions import ParseError

from core.errors import ERROR_CODES
from core.parsers import JSONParser
from leads import batch, limits
from leads.api.serializers import LeadInputSerializer
from leads.models import Lead, Note

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert ERROR_CODES[code][0] == status
    assert body["detail"] and body["request_id"] == response["X-Request-ID"]
    return body


def fields(body: dict) -> set[str | None]:
    return {error["field"] for error in body.get("errors", [])}


def email_of_length(length: int, domain_tail: str = "") -> str:
    """A well-formed address of exactly `length` characters (labels of at most 63)."""
    local = "a" * 64
    rest = length - len(local) - 1 - len(domain_tail) - len(".com")
    labels = []
    while rest > 0:
        size = min(63, rest)
        if rest - size == 1:  # never leave a single "." with nothing after it
            size -= 1
        labels.append("b" * size)
        rest -= size + 1
    domain = ".".join(labels)
    address = f"{local}@{domain_tail}{domain}.com"
    assert len(address) == length, len(address)
    return address


# A value of exactly the limit that the field accepts, per text field.
def value_at_limit(name: str, length: int) -> str:
    if name == "email":
        return email_of_length(length)
    if name == "country":
        return "DE"
    return "x" * length


# --- request body ---------------------------------------------------------------------------------


@pytest.fixture
def small_body_cap(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    return 4096


@pytest.mark.parametrize("idempotency_key", [None, "body-cap-1"], ids=["plain", "with-idempotency-key"])
def test_a_body_over_the_cap_is_413_payload_too_large_and_nothing_is_written(api, small_body_cap, idempotency_key):
    body = json.dumps({"leads": [{"email": f"p{i}@example.com", "city": "x" * 50} for i in range(60)]})
    assert len(body) > small_body_cap
    extra = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}

    response = api.post(f"{LEADS}/batch", body, content_type="application/json", **extra)

    problem_body = problem(response, 413, "payload_too_large")
    assert problem_body["max_bytes"] == small_body_cap
    assert str(small_body_cap) in problem_body["detail"]
    assert Lead.objects.count() == 0


def test_a_body_at_the_cap_is_accepted(api, small_body_cap):
    body = json.dumps({"email": "fits@example.com", "city": "y"})
    body = body[:-1] + " " * (small_body_cap - len(body)) + "}"
    assert len(body) == small_body_cap
    response = api.post(LEADS, body, content_type="application/json")
    assert response.status_code == 201, response.content


def test_the_default_body_cap_holds_a_full_batch_of_ordinary_leads(api, settings):
    """500 leads with a few custom fields each fit in the default cap by a wide margin."""
    leads = [
        {
            "email": f"lead{i}@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "company": "Analytical Engines Ltd",
            "tags": ["hot", "conference-2026"],
            "custom_fields": {f"field_{k}": "v" * 200 for k in range(10)},
        }
        for i in range(limits.MAX_BATCH_ITEMS)
    ]
    body = json.dumps({"leads": leads})
    assert len(body) * 4 < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = api.post(f"{LEADS}/batch", body, content_type="application/json")
    assert response.status_code == 207
    assert response.json()["summary"] == {"succeeded": 500, "failed": 0}


# --- text fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(limits.LEAD_TEXT_MAX_LENGTHS))
def test_the_serializer_caps_each_text_field_at_the_columns_max_length(name):
    """Equal numbers mean a value the serializer lets through always fits the column."""
    assert Lead._meta.get_field(name).max_length == limits.LEAD_TEXT_MAX_LENGTHS[name]
    assert LeadInputSerializer().fields[name].max_length == limits.LEAD_TEXT_MAX_LENGTHS[name]


@pytest.mark.parametrize("name", sorted(limits.LEAD_TEXT_MAX_LENGTHS))
def test_a_text_field_one_past_its_limit_is_400_naming_the_field_and_at_the_limit_is_stored(api, name):
    length = limits.LEAD_TEXT_MAX_LENGTHS[name]
    identity = {} if name == "email" else {"external_id": "ext-1"} if name != "external_id" else {}
    too_long = email_of_length(length + 1) if name == "email" else "x" * (length + 1)

    body = problem(api.post(LEADS, {**identity, name: too_long}, format="json"), 400, "validation_error")
    assert fields(body) == {name}
    assert Lead.objects.count() == 0

    response = api.post(LEADS, {**identity, name: value_at_limit(name, length)}, format="json")
    assert response.status_code == 201, response.content
    assert len(Lead.objects.values_list(name, flat=True).get()) == length


def test_an_email_that_grows_past_the_column_when_lower_cased_is_400_not_a_database_error(api):
    # "İ" (U+0130) lower-cases to two characters: 254 as sent, 255 as stored.
    address = email_of_length(254, domain_tail="İ")
    assert len(address.lower()) == 255
    body = problem(api.post(LEADS, {"email": address}, format="json"), 400, "validation_error")
    assert fields(body) == {"email"}
    assert Lead.objects.count() == 0


def test_an_update_past_a_limit_is_400_and_leaves_the_lead_as_it_was(api, account):
    lead = LeadFactory(account=account, company="Acme")
    body = problem(api.patch(f"{LEADS}/{lead.pk}", {"company": "c" * 201}, format="json"), 400, "validation_error")
    assert fields(body) == {"company"}
    lead.refresh_from_db()
    assert lead.company == "Acme"


def test_in_a_batch_an_item_past_a_limit_fails_alone(api):
    items = [{"email": "ok@example.com"}, {"email": "long@example.com", "job_title": "j" * 201}]
    response = api.post(f"{LEADS}/batch", {"leads": items}, format="json")
    assert response.status_code == 207
    ok, bad = response.json()["results"]
    assert ok["status"] == 201
    assert bad["status"] == 400 and bad["error"]["code"] == "validation_error"
    assert {e["field"] for e in bad["error"]["errors"]} == {"job_title"}
    assert list(Lead.objects.values_list("email", flat=True)) == ["ok@example.com"]


# --- tags ------------------------------------------------------------------------------------------


def test_more_tags_than_the_cap_is_400_naming_tags(api):
    tags = [f"t{i}" for i in range(limits.MAX_TAGS + 1)]
    body = problem(api.post(LEADS, {"email": "t@example.com", "tags": tags}, format="json"), 400, "validation_error")
    assert fields(body) == {"tags"}


def test_a_tag_longer_than_the_cap_is_400_naming_that_tag(api):
    tags = ["fine", "t" * (limits.MAX_TAG_LENGTH + 1)]
    body = problem(api.post(LEADS, {"email": "t@example.com", "tags": tags}, format="json"), 400, "validation_error")
    assert fields(body) == {"tags.1"}


def test_the_most_tags_of_the_longest_length_are_stored(api):
    tags = [f"{i:03d}".ljust(limits.MAX_TAG_LENGTH, "t") for i in range(limits.MAX_TAGS)]
    response = api.post(LEADS, {"email": "t@example.com", "tags": tags}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == tags


@pytest.mark.parametrize("name", ["add_tags", "remove_tags"])
def test_batch_tag_edits_have_the_same_caps(api, account, name):
    lead = LeadFactory(account=account)
    items = [{"id": str(lead.pk), name: [f"t{i}" for i in range(limits.MAX_TAGS + 1)]}]
    (result,) = api.put(f"{LEADS}/batch", {"leads": items}, format="json").json()["results"]
    assert result["status"] == 400
    assert {e["field"] for e in result["error"]["errors"]} == {name}


# --- custom_fields ---------------------------------------------------------------------------------


def custom(api, value):
    return api.post(LEADS, {"email": "c@example.com", "custom_fields": value}, format="json")


def test_more_custom_fields_than_the_cap_is_400(api):
    value = {f"k{i}": i for i in range(limits.MAX_CUSTOM_FIELDS + 1)}
    body = problem(custom(api, value), 400, "validation_error")
    assert fields(body) == {"custom_fields"}
    assert str(limits.MAX_CUSTOM_FIELDS) in body["detail"]


@pytest.mark.parametrize(
    "key",
    ["k" * (limits.MAX_CUSTOM_KEY_LENGTH + 1), "", "has space", "a__b", "ünïcode"],
    ids=["too-long", "empty", "space", "double-underscore", "non-ascii"],
)
def test_a_bad_custom_field_key_is_400(api, key):
    body = problem(custom(api, {key: "v"}), 400, "validation_error")
    (field,) = fields(body)
    assert field.startswith("custom_fields")


def test_a_custom_field_error_does_not_echo_a_huge_key_back(api):
    body = problem(custom(api, {"k" * 5000: "v"}), 400, "validation_error")
    assert max(len(e["field"]) for e in body["errors"]) < 100


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, [1, 2], [], {}, "v" * (limits.MAX_CUSTOM_VALUE_LENGTH + 1), 2**53, -(2**53), 2**62, 1.5e300],
    ids=["object", "list", "empty-list", "empty-object", "long-string", "2^53", "-2^53", "2^62", "1.5e300"],
)
def test_a_custom_field_value_that_is_not_a_bounded_scalar_is_400_naming_the_key(api, value):
    body = problem(custom(api, {"plan": value}), 400, "validation_error")
    assert fields(body) == {"custom_fields.plan"}
    assert Lead.objects.count() == 0


def test_custom_fields_at_every_limit_are_stored_and_read_back(api):
    value = {f"k{i}": "v" * limits.MAX_CUSTOM_VALUE_LENGTH for i in range(limits.MAX_CUSTOM_FIELDS - 4)}
    value.update(
        {
            "k" * limits.MAX_CUSTOM_KEY_LENGTH: limits.MAX_SAFE_INTEGER,
            "smallest": -limits.MAX_SAFE_INTEGER,
            "ratio": -0.25,
            "flag": None,
        }
    )
    created = custom(api, value)
    assert created.status_code == 201, created.content
    read = api.get(f"{LEADS}/{created.json()['id']}")
    assert read.status_code == 200
    assert read.json()["custom_fields"] == value


def test_a_custom_field_that_is_not_an_object_is_400(api):
    body = problem(custom(api, ["a", "b"]), 400, "validation_error")
    assert fields(body) == {"custom_fields"}


# --- notes and batches -----------------------------------------------------------------------------


def test_a_note_longer_than_the_cap_is_400_and_one_at_the_cap_is_stored(api, account):
    lead = LeadFactory(account=account)
    url = f"{LEADS}/{lead.pk}/notes"
    body = problem(api.post(url, {"body": "n" * (limits.NOTE_MAX_LENGTH + 1)}, format="json"), 400, "validation_error")
    assert fields(body) == {"body"}
    assert api.post(url, {"body": "n" * limits.NOTE_MAX_LENGTH}, format="json").status_code == 201
    assert Note.objects.count() == 1


@pytest.mark.parametrize(
    ("method", "key"), [("post", "leads"), ("put", "leads"), ("delete", "ids")], ids=["create", "update", "delete"]
)
def test_a_batch_past_the_item_cap_is_413_batch_too_large(api, method, key):
    items = [{"email": f"b{i}@example.com"} for i in range(limits.MAX_BATCH_ITEMS + 1)]
    if key == "ids":
        items = [str(i) for i in range(limits.MAX_BATCH_ITEMS + 1)]
    response = getattr(api, method)(f"{LEADS}/batch", {key: items}, format="json")
    body = problem(response, 413, "batch_too_large")
    assert body["max_items"] == limits.MAX_BATCH_ITEMS
    assert Lead.objects.count() == 0


def test_the_limits_module_is_the_one_the_batch_engine_and_the_note_model_use():
    from leads import models

    assert batch.MAX_BATCH_ITEMS == limits.MAX_BATCH_ITEMS
    assert models.NOTE_MAX_LENGTH == limits.NOTE_MAX_LENGTH


# --- the limits are in the API documentation --------------------------------------------------------


def test_the_openapi_schema_states_the_lead_input_limits():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    lead_input = schema["components"]["schemas"]["LeadInputRequest"]["properties"]
    for name, length in limits.LEAD_TEXT_MAX_LENGTHS.items():
        variants = lead_input[name].get("oneOf", [lead_input[name]])  # email: an address or ""
        assert max(v["maxLength"] for v in variants) == length, name
    assert lead_input["tags"]["maxItems"] == limits.MAX_TAGS
    assert lead_input["tags"]["items"]["maxLength"] == limits.MAX_TAG_LENGTH
    custom_fields = lead_input["custom_fields"]
    assert custom_fields["maxProperties"] == limits.MAX_CUSTOM_FIELDS
    string, number, boolean = custom_fields["additionalProperties"]["anyOf"]
    assert string == {"type": "string", "maxLength": limits.MAX_CUSTOM_VALUE_LENGTH}
    assert (number["minimum"], number["maximum"]) == (-limits.MAX_SAFE_INTEGER, limits.MAX_SAFE_INTEGER)
    assert boolean == {"type": "boolean"}
    assert str(limits.MAX_CUSTOM_KEY_LENGTH) in custom_fields["description"]


# --- numbers the API could not send back ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/scoring-rules",
            {"name": "r", "field": "custom_fields.n", "operator": "gte", "value": 10**30, "points": 5},
        ),
        ("/api/v1/segments", {"name": "s", "filters": {"score__gte": 2**64}}),
        (LEADS, {"email": "n@example.com", "custom_fields": {"n": -(2**70)}}),
    ],
    ids=["scoring-rule-value", "segment-filter", "custom-field"],
)
def test_an_integer_past_64_bits_anywhere_in_a_body_is_400_malformed_request_and_nothing_is_saved(api, path, body):
    from leads.models import Segment
    from scoring.models import ScoringRule

    response = api.post(path, body, format="json")
    body = problem(response, 400, "malformed_request")
    assert "64-bit" in body["detail"]
    assert not ScoringRule.objects.exists() and not Segment.objects.exists() and not Lead.objects.exists()
    assert api.get(path).status_code == 200  # and the list still renders


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63), 0, -1, 10**18])
def test_the_parser_takes_every_64_bit_integer(value):
    assert JSONParser().parse(io.BytesIO(json.dumps({"n": value}).encode())) == {"n": value}


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**4000])
def test_the_parser_refuses_integers_past_64_bits(value):
    with pytest.raises(ParseError, match=r"64-bit"):
        JSONParser().parse(io.BytesIO(b'{"n": ' + str(value).encode() + b"}"))
