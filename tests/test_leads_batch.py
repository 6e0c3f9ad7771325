"""Batch create, update and delete (§4.5) through the API: POST|PUT|DELETE /api/v1/leads/batch.

Each item succeeds or fails on its own and the 207 report lists them in input order; deduplication
is the single create's (§4.4); `dry_run` writes nothing; and a batch is set-based SQL, so 50 items
and 500 items cost the same number of queries.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from leads.models import Lead

from .factories import AccountFactory, LeadFactory, MembershipFactory

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/leads/batch"


# --- helpers --------------------------------------------------------------------------------


def url(**params) -> str:
    return f"{BATCH}?{urlencode(params)}" if params else BATCH


def post_batch(client, leads, **params):
    return client.post(url(**params), {"leads": leads}, format="json")


def put_batch(client, leads, **params):
    return client.put(url(**params), {"leads": leads}, format="json")


def delete_batch(client, ids, **params):
    return client.delete(url(**params), {"ids": ids}, format="json")


def report(response) -> list[dict]:
    """The 207 results, checked to be in input order (index 0..n-1)."""
    assert response.status_code == 207, response.content
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(results)))
    return results


def statuses(response) -> list[tuple[int, str | None]]:
    """(status, error code or None) per item."""
    return [(r["status"], r.get("error", {}).get("code")) for r in report(response)]


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert ERROR_CODES[code][0] == status
    assert body["status"] == status
    assert body["type"] == PROBLEM_TYPE_BASE + code
    return body


def make_lead(account, **fields) -> Lead:
    """A lead written directly, with no name or company unless given (so soft matches are deliberate)."""
    defaults = {"first_name": "", "last_name": "", "company": ""}
    return LeadFactory(account=account, **{**defaults, **fields})


def count(account) -> int:
    return Lead.objects.filter(account=account).count()


def queries_for(call) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return response, len(ctx.captured_queries)


# --- create: size and shape ----------------------------------------------------------------


def test_batch_create_of_500_valid_leads_returns_207_with_every_result_in_input_order(api, account):
    items = [{"email": f"Lead{i}@Example.com", "first_name": f"N{i}", "tags": ["Batch"]} for i in range(500)]

    response = post_batch(api, items)

    results = report(response)
    assert len(results) == 500
    assert all(r["status"] == 201 and r["outcome"] == "created" for r in results)
    assert [r["lead"]["email"] for r in results] == [f"lead{i}@example.com" for i in range(500)]
    assert all(r["id"] == r["lead"]["id"] for r in results)
    assert response.json()["summary"] == {"succeeded": 500, "failed": 0}
    assert response.json()["dry_run"] is False
    assert count(account) == 500
    stored = dict(Lead.objects.filter(account=account).values_list("id", "email"))
    assert {str(pk): email for pk, email in stored.items()} == {r["id"]: r["lead"]["email"] for r in results}
    assert set(Lead.objects.get(email="lead7@example.com").tags) == {"batch"}


@pytest.mark.parametrize(
    "method, body",
    [
        ("post", {"leads": [{"email": f"x{i}@example.com"} for i in range(501)]}),
        ("put", {"leads": [{"id": str(uuid.uuid4()), "city": "X"} for _ in range(501)]}),
        ("delete", {"ids": [str(uuid.uuid4()) for _ in range(501)]}),
    ],
    ids=["create", "update", "delete"],
)
def test_a_batch_of_501_items_is_413_batch_too_large_and_writes_nothing(api, account, method, body):
    existing = make_lead(account, email="keep@example.com", city="Paris")

    response = getattr(api, method)(BATCH, body, format="json")

    assert_problem(response, 413, "batch_too_large")
    assert count(account) == 1
    assert Lead.objects.get(pk=existing.pk).city == "Paris"


@pytest.mark.parametrize(
    "body, code",
    [
        ([{"email": "a@example.com"}], "malformed_request"),
        ("leads", "malformed_request"),
        ({}, "validation_error"),
        ({"leads": {"email": "a@example.com"}}, "validation_error"),
        ({"leads": "a@example.com"}, "validation_error"),
        ({"leads": None}, "validation_error"),
        ({"leads": []}, "validation_error"),
        ({"leads": [{"email": "a@example.com"}], "dry_run": True}, "unknown_field"),
        ({"ids": [str(uuid.uuid4())]}, "unknown_field"),
    ],
    ids=[
        "list",
        "string",
        "empty-object",
        "leads-object",
        "leads-string",
        "leads-null",
        "leads-empty",
        "extra-key",
        "ids-instead-of-leads",
    ],
)
def test_batch_create_with_a_body_not_of_the_documented_shape_is_400_and_writes_nothing(api, account, body, code):
    response = api.post(BATCH, body, format="json")

    assert_problem(response, 400, code)
    assert count(account) == 0


def test_batch_create_with_a_body_that_is_not_json_is_400_malformed_request(api, account):
    response = api.post(BATCH, data='{"leads": [', content_type="application/json")

    assert_problem(response, 400, "malformed_request")
    assert count(account) == 0


@pytest.mark.parametrize(
    "method, body",
    [
        ("put", {"ids": [str(uuid.uuid4())]}),
        ("put", {"leads": []}),
        ("put", {"leads": [], "extra": 1}),
        ("delete", {"ids": []}),
        ("delete", {"ids": "not-a-list"}),
        ("delete", {"leads": [{"email": "a@example.com"}]}),
        ("delete", [str(uuid.uuid4())]),
    ],
)
def test_batch_update_and_delete_with_a_body_not_of_the_documented_shape_is_400(api, account, method, body):
    lead = make_lead(account, email="keep@example.com")

    response = getattr(api, method)(BATCH, body, format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert Lead.objects.filter(pk=lead.pk).exists()


@pytest.mark.parametrize("params", [{"on_duplicate": "merge"}, {"dry_run": "maybe"}])
def test_batch_create_with_a_malformed_query_parameter_is_400_invalid_parameter(api, account, params):
    response = post_batch(api, [{"email": "a@example.com"}], **params)

    assert_problem(response, 400, "invalid_parameter")
    assert count(account) == 0


@pytest.mark.parametrize(
    "method, body",
    [
        ("post", lambda lead: {"leads": [{"email": "a@example.com"}]}),
        ("put", lambda lead: {"leads": [{"id": str(lead.pk), "city": "Berlin"}]}),
        ("delete", lambda lead: {"ids": [str(lead.pk)]}),
    ],
    ids=["create", "update", "delete"],
)
def test_batch_endpoints_need_the_leads_write_scope(make_client, account, method, body):
    lead = make_lead(account, email="keep@example.com", city="Paris")
    reader = make_client(account, scopes=["leads:read"])

    response = getattr(reader, method)(BATCH, body(lead), format="json")

    assert_problem(response, 403, "insufficient_scope")
    assert list(Lead.objects.filter(account=account).values_list("city", flat=True)) == ["Paris"]


# --- create: each item on its own ----------------------------------------------------------


MIXED = [
    {"email": "valid@example.com", "first_name": "Val"},  # 0: created
    {"email": "not-an-email"},  # 1: invalid email
    {"first_name": "Nobody", "company": "Nowhere"},  # 2: no email, phone or external_id
    {"email": "EXISTING@example.com"},  # 3: already in the database
    {"email": "pair@example.com"},  # 4: created
    {"email": " Pair@Example.COM "},  # 5: same email as item 4, written differently
    {"email": "readonly@example.com", "score": 99},  # 6: read-only field
    {"email": "unknown@example.com", "colour": "red"},  # 7: unknown field
    "not-an-object",  # 8: not an object
]
MIXED_EXPECTED = [
    (201, None),
    (400, "validation_error"),
    (400, "validation_error"),
    (409, "duplicate_lead"),
    (201, None),
    (409, "duplicate_in_batch"),
    (400, "read_only_field"),
    (400, "unknown_field"),
    (400, "validation_error"),
]


def test_batch_create_reports_each_item_of_a_mixed_batch_on_its_own(api, account):
    existing = make_lead(account, email="existing@example.com")

    response = post_batch(api, MIXED)

    assert statuses(response) == MIXED_EXPECTED
    results = report(response)
    assert response.json()["summary"] == {"succeeded": 2, "failed": 7}
    assert {"field": "email"}.items() <= results[1]["error"]["errors"][0].items()
    assert {e["field"] for e in results[2]["error"]["errors"]} >= {"email", "phone", "external_id"}
    assert results[3]["error"]["existing_id"] == str(existing.pk)
    assert results[5]["error"]["duplicate_of_index"] == 4
    assert [e["field"] for e in results[6]["error"]["errors"]] == ["score"]
    assert [e["field"] for e in results[7]["error"]["errors"]] == ["colour"]
    for failed in (results[i] for i in (1, 2, 3, 5, 6, 7, 8)):
        assert "lead" not in failed and "id" not in failed
        assert failed["error"]["message"]
    assert results[0]["lead"]["email"] == "valid@example.com"
    assert results[0]["lead"]["first_name"] == "Val"
    assert results[4]["lead"]["email"] == "pair@example.com"
    assert sorted(Lead.objects.filter(account=account).values_list("email", flat=True)) == [
        "existing@example.com",
        "pair@example.com",
        "valid@example.com",
    ]
    assert str(Lead.objects.get(email="valid@example.com").pk) == results[0]["id"]


def test_batch_create_refuses_an_owner_who_is_not_a_member_of_the_account(api, account, other_account):
    member = MembershipFactory(account=account).user
    outsider = MembershipFactory(account=other_account).user

    response = post_batch(
        api,
        [
            {"email": "a@example.com", "owner": member.pk},
            {"email": "b@example.com", "owner": outsider.pk},
        ],
    )

    assert statuses(response) == [(201, None), (400, "validation_error")]
    results = report(response)
    assert results[0]["lead"]["owner"] == member.pk
    assert [e["field"] for e in results[1]["error"]["errors"]] == ["owner"]
    assert count(account) == 1


def test_batch_create_reports_duplicate_in_batch_for_the_second_item_only(api, account):
    response = post_batch(api, [{"email": "twin@example.com"}, {"email": "TWIN@example.com"}])

    assert statuses(response) == [(201, None), (409, "duplicate_in_batch")]
    assert count(account) == 1


def test_batch_create_deduplicates_by_external_id_like_by_email(api, account):
    existing = make_lead(account, email=None, external_id="crm-1")
    with_email = make_lead(account, email="known@example.com", external_id="crm-3")

    response = post_batch(
        api,
        [
            {"external_id": "crm-1", "city": "Paris"},
            {"external_id": " crm-2 "},
            {"external_id": "crm-2", "email": "other@example.com"},
            {"email": "new@example.com", "external_id": "crm-3"},
        ],
    )

    assert statuses(response) == [
        (409, "duplicate_lead"),
        (201, None),
        (409, "duplicate_in_batch"),
        (409, "duplicate_lead"),
    ]
    results = report(response)
    assert results[0]["error"]["existing_id"] == str(existing.pk)
    assert results[2]["error"]["duplicate_of_index"] == 1
    assert results[3]["error"]["existing_id"] == str(with_email.pk)
    assert results[1]["lead"]["external_id"] == "crm-2"
    assert sorted(Lead.objects.filter(account=account).values_list("external_id", flat=True)) == [
        "crm-1",
        "crm-2",
        "crm-3",
    ]
    assert Lead.objects.get(pk=existing.pk).city == ""


def test_batch_create_does_not_match_leads_of_another_account(api, account, other_account):
    make_lead(other_account, email="shared@example.com", external_id="crm-shared")

    response = post_batch(api, [{"email": "shared@example.com"}, {"external_id": "crm-shared"}])

    assert statuses(response) == [(201, None), (201, None)]
    assert count(account) == 2
    assert count(other_account) == 1


def test_batch_create_with_on_duplicate_skip_returns_the_existing_lead_unchanged(api, account):
    existing = make_lead(account, email="known@example.com", city="Paris", tags=["old"])

    response = post_batch(
        api,
        [{"email": "Known@example.com", "city": "Berlin", "tags": ["new"]}, {"email": "fresh@example.com"}],
        on_duplicate="skip",
    )

    results = report(response)
    assert (results[0]["status"], results[0]["outcome"], results[0]["id"]) == (
        200,
        "skipped",
        str(existing.pk),
    )
    assert results[0]["lead"]["city"] == "Paris"
    assert results[0]["lead"]["tags"] == ["old"]
    assert (results[1]["status"], results[1]["outcome"]) == (201, "created")
    assert response.json()["summary"] == {"succeeded": 2, "failed": 0}
    existing_after = Lead.objects.get(pk=existing.pk)
    assert (existing_after.city, existing_after.tags, existing_after.version) == ("Paris", ["old"], 1)
    assert count(account) == 2


def test_batch_create_with_on_duplicate_update_merges_the_new_fields_into_the_existing_lead(api, account):
    existing = make_lead(
        account,
        email="known@example.com",
        city="Paris",
        company="Acme",
        tags=["a", "shared"],
        custom_fields={"x": 1},
    )
    by_ext = make_lead(account, email=None, external_id="crm-9", job_title="CTO")

    response = post_batch(
        api,
        [
            {
                "email": "KNOWN@example.com",
                "city": "Berlin",
                "tags": ["Shared", "b"],
                "custom_fields": {"y": 2},
            },
            {"external_id": "crm-9", "job_title": "CEO"},
            {"email": "fresh@example.com"},
        ],
        on_duplicate="update",
    )

    results = report(response)
    assert [(r["status"], r["outcome"], r["id"]) for r in results[:2]] == [
        (200, "updated", str(existing.pk)),
        (200, "updated", str(by_ext.pk)),
    ]
    assert (results[2]["status"], results[2]["outcome"]) == (201, "created")
    merged = results[0]["lead"]
    assert merged["city"] == "Berlin"
    assert merged["company"] == "Acme"
    assert merged["tags"] == ["a", "shared", "b"]
    assert merged["custom_fields"] == {"x": 1, "y": 2}
    existing.refresh_from_db()
    assert (existing.city, existing.company, existing.tags) == ("Berlin", "Acme", ["a", "shared", "b"])
    assert existing.custom_fields == {"x": 1, "y": 2}
    assert existing.version == 2
    assert Lead.objects.get(pk=by_ext.pk).job_title == "CEO"
    assert count(account) == 3


def test_batch_create_with_on_duplicate_update_refuses_to_take_another_leads_external_id(api, account):
    first = make_lead(account, email="first@example.com")
    second = make_lead(account, email="second@example.com", external_id="crm-2")

    response = post_batch(
        api,
        [{"email": "first@example.com", "external_id": "crm-2"}, {"email": "third@example.com"}],
        on_duplicate="update",
    )

    assert statuses(response) == [(409, "duplicate_lead"), (201, None)]
    assert report(response)[0]["error"]["existing_id"] == str(second.pk)
    first.refresh_from_db()
    assert first.external_id is None
    assert first.version == 1


def test_batch_create_dry_run_reports_what_would_happen_and_writes_nothing(api, account):
    make_lead(account, email="existing@example.com")

    dry = post_batch(api, MIXED, dry_run="true")

    assert statuses(dry) == MIXED_EXPECTED
    assert dry.json()["dry_run"] is True
    assert dry.json()["summary"] == {"succeeded": 2, "failed": 7}
    assert count(account) == 1
    assert statuses(post_batch(api, MIXED)) == MIXED_EXPECTED
    assert count(account) == 3


@pytest.mark.parametrize("on_duplicate", ["skip", "update"])
def test_batch_create_dry_run_with_on_duplicate_writes_nothing(api, account, on_duplicate):
    existing = make_lead(account, email="known@example.com", city="Paris")

    response = post_batch(
        api,
        [{"email": "known@example.com", "city": "Berlin"}, {"email": "fresh@example.com"}],
        on_duplicate=on_duplicate,
        dry_run="true",
    )

    results = report(response)
    expected_outcome = {"skip": "skipped", "update": "updated"}[on_duplicate]
    assert [(r["status"], r["outcome"]) for r in results] == [(200, expected_outcome), (201, "created")]
    assert results[0]["id"] == str(existing.pk)
    assert count(account) == 1
    existing.refresh_from_db()
    assert (existing.city, existing.version) == ("Paris", 1)


# --- create: plan cap ----------------------------------------------------------------------


@pytest.fixture
def capped(make_client):
    """A free account allowed 3 leads that has 2, and its client."""
    account = AccountFactory(plan="free", lead_limit_override=3)
    make_lead(account, email="one@example.com")
    make_lead(account, email="two@example.com")
    return account, make_client(account)


def test_batch_create_beyond_the_plan_cap_creates_up_to_the_cap_and_refuses_the_rest(capped):
    account, client = capped

    response = post_batch(client, [{"email": f"new{i}@example.com"} for i in range(3)])

    assert statuses(response) == [(201, None), (403, "plan_limit_reached"), (403, "plan_limit_reached")]
    assert response.json()["summary"] == {"succeeded": 1, "failed": 2}
    assert count(account) == 3
    assert Lead.objects.filter(account=account, email="new0@example.com").exists()


def test_batch_create_at_the_plan_cap_counts_only_new_valid_leads(capped):
    account, client = capped

    response = post_batch(
        client,
        [
            {"email": "bad"},
            {"email": "one@example.com"},
            {"email": "new@example.com"},
            {"email": "more@example.com"},
        ],
        on_duplicate="skip",
    )

    assert [(r["status"], r.get("outcome"), r.get("error", {}).get("code")) for r in report(response)] == [
        (400, None, "validation_error"),
        (200, "skipped", None),
        (201, "created", None),
        (403, None, "plan_limit_reached"),
    ]
    assert count(account) == 3


# --- soft duplicates -----------------------------------------------------------------------


def test_batch_create_marks_a_possible_duplicate_of_a_lead_with_the_same_phone(api, account):
    existing = make_lead(account, email="old@example.com", phone="+442079460958")

    response = post_batch(
        api,
        [
            {"email": "new@example.com", "phone": "020 7946 0958", "country": "GB"},
            {"email": "unrelated@example.com", "phone": "+4930901820"},
        ],
    )

    results = report(response)
    assert [r["status"] for r in results] == [201, 201]
    assert results[0]["lead"]["possible_duplicate_of"] == str(existing.pk)
    assert results[1]["lead"]["possible_duplicate_of"] is None
    assert Lead.objects.get(email="new@example.com").possible_duplicate_of_id == existing.pk


def test_batch_create_marks_a_possible_duplicate_between_items_of_the_same_batch(api, account):
    response = post_batch(
        api,
        [
            {"email": "a@example.com", "phone": "+49 30 901820"},
            {"email": "b@example.com", "phone": "+4930901820"},
            {"email": "c@example.com", "first_name": "Ada", "last_name": "Lovelace", "company": "Engines"},
            {"external_id": "crm-ada", "first_name": "ADA", "last_name": "lovelace", "company": "engines"},
        ],
    )

    results = report(response)
    assert [r["status"] for r in results] == [201] * 4
    assert results[0]["lead"]["possible_duplicate_of"] is None
    assert results[1]["lead"]["possible_duplicate_of"] == results[0]["id"]
    assert results[2]["lead"]["possible_duplicate_of"] is None
    assert results[3]["lead"]["possible_duplicate_of"] == results[2]["id"]
    stored = dict(Lead.objects.filter(account=account).values_list("email", "possible_duplicate_of_id"))
    assert str(stored["b@example.com"]) == results[0]["id"]


def test_batch_create_marks_a_possible_duplicate_by_name_and_company_in_the_database(api, account):
    existing = make_lead(account, email="ada@example.com", first_name="Ada", last_name="Lovelace", company="Engines")

    response = post_batch(
        api,
        [{"email": "ada2@example.com", "first_name": "ada", "last_name": "LOVELACE", "company": "engines"}],
    )

    assert report(response)[0]["lead"]["possible_duplicate_of"] == str(existing.pk)


def test_batch_update_marks_a_possible_duplicate_when_a_phone_matches_another_lead(api, account):
    existing = make_lead(account, email="old@example.com", phone="+442079460958")
    lead = make_lead(account, email="other@example.com")

    response = put_batch(api, [{"id": str(lead.pk), "phone": "+44 20 7946 0958"}])

    assert report(response)[0]["lead"]["possible_duplicate_of"] == str(existing.pk)
    assert Lead.objects.get(pk=lead.pk).possible_duplicate_of_id == existing.pk


# --- update --------------------------------------------------------------------------------


def test_batch_update_changes_each_lead_by_id_and_reports_the_changed_lead(api, account):
    member = MembershipFactory(account=account).user
    first = make_lead(account, email="first@example.com", city="Paris")
    second = make_lead(account, email="second@example.com", tags=["a"])

    response = put_batch(
        api,
        [
            {"id": str(first.pk), "city": "Berlin", "status": "qualified"},
            {"id": str(second.pk), "tags": ["X", "y"], "owner": member.pk, "email": "Second.New@Example.com"},
        ],
    )

    results = report(response)
    assert [(r["status"], r["outcome"], r["id"]) for r in results] == [
        (200, "updated", str(first.pk)),
        (200, "updated", str(second.pk)),
    ]
    assert (results[0]["lead"]["city"], results[0]["lead"]["status"]) == ("Berlin", "qualified")
    assert results[1]["lead"]["tags"] == ["x", "y"]
    assert results[1]["lead"]["owner"] == member.pk
    assert results[1]["lead"]["email"] == "second.new@example.com"
    assert response.json()["summary"] == {"succeeded": 2, "failed": 0}
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.city, first.status, first.version) == ("Berlin", "qualified", 2)
    assert (second.tags, second.owner_id, second.email) == (["x", "y"], member.pk, "second.new@example.com")


def test_batch_update_that_changes_nothing_reports_the_lead_unchanged(api, account):
    lead = make_lead(account, email="same@example.com", city="Paris", tags=["a"])

    response = put_batch(api, [{"id": str(lead.pk), "city": "Paris", "email": "SAME@example.com", "add_tags": ["A"]}])

    result = report(response)[0]
    assert (result["status"], result["outcome"], result["id"]) == (200, "unchanged", str(lead.pk))
    lead.refresh_from_db()
    assert (lead.version, lead.tags) == (1, ["a"])


def test_batch_update_adds_and_removes_tags_without_replacing_the_others(api, account):
    lead = make_lead(account, email="tagged@example.com", tags=["a", "b", "c"])

    response = put_batch(api, [{"id": str(lead.pk), "add_tags": ["D", "a"], "remove_tags": ["B"]}])

    assert report(response)[0]["lead"]["tags"] == ["a", "c", "d"]
    assert Lead.objects.get(pk=lead.pk).tags == ["a", "c", "d"]


def test_batch_update_answers_404_per_item_for_another_accounts_lead_and_leaves_it_unchanged(
    api, account, other_account
):
    mine = make_lead(account, email="mine@example.com")
    theirs = make_lead(other_account, email="theirs@example.com", city="Paris")

    response = put_batch(
        api,
        [
            {"id": str(theirs.pk), "city": "Berlin"},
            {"id": str(uuid.uuid4()), "city": "Berlin"},
            {"id": str(mine.pk), "city": "Berlin"},
        ],
    )

    assert statuses(response) == [(404, "not_found"), (404, "not_found"), (200, None)]
    assert response.json()["summary"] == {"succeeded": 1, "failed": 2}
    theirs.refresh_from_db()
    assert (theirs.city, theirs.version) == ("Paris", 1)
    assert Lead.objects.get(pk=mine.pk).city == "Berlin"


def test_batch_update_reports_the_second_item_for_the_same_lead_as_duplicate_in_batch(api, account):
    lead = make_lead(account, email="once@example.com")

    response = put_batch(api, [{"id": str(lead.pk), "city": "First"}, {"id": str(lead.pk), "city": "Second"}])

    assert statuses(response) == [(200, None), (409, "duplicate_in_batch")]
    assert report(response)[1]["error"]["duplicate_of_index"] == 0
    assert Lead.objects.get(pk=lead.pk).city == "First"


def test_batch_update_refuses_an_email_another_lead_already_has(api, account):
    holder = make_lead(account, email="taken@example.com")
    lead = make_lead(account, email="mine@example.com")

    response = put_batch(api, [{"id": str(lead.pk), "email": "TAKEN@example.com", "city": "Berlin"}])

    assert statuses(response) == [(409, "duplicate_lead")]
    assert report(response)[0]["error"]["existing_id"] == str(holder.pk)
    lead.refresh_from_db()
    assert (lead.email, lead.city, lead.version) == ("mine@example.com", "", 1)


def test_batch_update_refuses_the_same_new_email_for_two_leads_of_one_batch(api, account):
    first = make_lead(account, email="first@example.com")
    second = make_lead(account, email="second@example.com")

    response = put_batch(
        api,
        [
            {"id": str(first.pk), "email": "new@example.com"},
            {"id": str(second.pk), "email": "NEW@example.com"},
        ],
    )

    assert statuses(response) == [(200, None), (409, "duplicate_in_batch")]
    assert Lead.objects.get(pk=second.pk).email == "second@example.com"
    assert Lead.objects.get(pk=first.pk).email == "new@example.com"


def test_batch_update_reports_invalid_items_on_their_own(api, account):
    lead = make_lead(account, email="only-identity@example.com")
    other = make_lead(account, email="other@example.com")

    response = put_batch(
        api,
        [
            {"city": "No id"},
            {"id": str(lead.pk), "score": 50},
            {"id": str(lead.pk), "colour": "red"},
            {"id": str(lead.pk), "email": None},
            {"id": str(other.pk), "email": "not-an-email"},
            {"id": str(other.pk), "city": "Valid"},
        ],
    )

    assert statuses(response) == [
        (400, "validation_error"),
        (400, "read_only_field"),
        (400, "unknown_field"),
        (400, "validation_error"),
        (400, "validation_error"),
        (200, None),
    ]
    assert Lead.objects.get(pk=lead.pk).email == "only-identity@example.com"
    assert Lead.objects.get(pk=other.pk).city == "Valid"


def test_batch_update_dry_run_reports_the_change_and_writes_nothing(api, account):
    lead = make_lead(account, email="dry@example.com", city="Paris", tags=["a"])

    response = put_batch(api, [{"id": str(lead.pk), "city": "Berlin", "add_tags": ["b"]}], dry_run="true")

    result = report(response)[0]
    assert (result["status"], result["lead"]["city"], result["lead"]["tags"]) == (200, "Berlin", ["a", "b"])
    assert response.json()["dry_run"] is True
    lead.refresh_from_db()
    assert (lead.city, lead.tags, lead.version) == ("Paris", ["a"], 1)
    assert count(account) == 1


# --- delete --------------------------------------------------------------------------------


def test_batch_delete_deletes_the_accounts_leads_and_answers_204_per_item(api, account):
    leads = [make_lead(account, email=f"gone{i}@example.com") for i in range(3)]
    keep = make_lead(account, email="keep@example.com")

    response = delete_batch(api, [str(lead.pk) for lead in leads])

    results = report(response)
    assert [(r["status"], r["id"]) for r in results] == [(204, str(lead.pk)) for lead in leads]
    assert response.json()["summary"] == {"succeeded": 3, "failed": 0}
    assert list(Lead.objects.filter(account=account).values_list("pk", flat=True)) == [keep.pk]


def test_batch_delete_answers_404_per_item_for_other_accounts_unknown_and_malformed_ids(api, account, other_account):
    mine = make_lead(account, email="mine@example.com")
    theirs = make_lead(other_account, email="theirs@example.com")

    response = delete_batch(api, [str(theirs.pk), str(uuid.uuid4()), "not-a-uuid", 42, None, {"id": 1}, str(mine.pk)])

    assert statuses(response) == [(404, "not_found")] * 6 + [(204, None)]
    assert Lead.objects.filter(pk=theirs.pk).exists()
    assert not Lead.objects.filter(pk=mine.pk).exists()


def test_batch_delete_reports_the_second_item_for_the_same_lead_as_duplicate_in_batch(api, account):
    lead = make_lead(account, email="once@example.com")

    response = delete_batch(api, [str(lead.pk), str(lead.pk).upper()])

    assert statuses(response) == [(204, None), (409, "duplicate_in_batch")]
    assert count(account) == 0


def test_batch_delete_dry_run_reports_the_deletions_and_deletes_nothing(api, account):
    leads = [make_lead(account, email=f"stay{i}@example.com") for i in range(3)]

    response = delete_batch(api, [str(lead.pk) for lead in leads] + [str(uuid.uuid4())], dry_run="true")

    assert statuses(response) == [(204, None)] * 3 + [(404, "not_found")]
    assert response.json()["dry_run"] is True
    assert count(account) == 3


def test_batch_delete_of_a_lead_others_point_to_as_possible_duplicate_clears_the_pointer(api, account):
    original = make_lead(account, email="original@example.com", phone="+4930901820")
    copy = make_lead(account, email="copy@example.com", phone="+4930901820", possible_duplicate_of=original)

    response = delete_batch(api, [str(original.pk)])

    assert statuses(response) == [(204, None)]
    assert Lead.objects.get(pk=copy.pk).possible_duplicate_of_id is None


# --- one round of set-based SQL, whatever the size ----------------------------------------


def _create_items(n: int, owner_id: int, prefix: str) -> list[dict]:
    return [
        {
            "email": f"{prefix}{i}@example.com",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "company": f"Co{i}",
            "phone": f"+1 202 555 {i:04d}",
            "tags": ["Batch", f"t{i % 7}"],
            "owner": owner_id,
            "custom_fields": {"n": i},
        }
        for i in range(n)
    ]


def _seed(account, n: int, prefix: str) -> list[Lead]:
    leads = [Lead(account=account, email=f"{prefix}{i}@example.com", tags=["seed"]) for i in range(n)]
    Lead.objects.bulk_create(leads)
    return leads


def test_batch_create_of_50_and_of_500_leads_issue_the_same_number_of_queries(api, account):
    owner = MembershipFactory(account=account).user
    api.get("/api/v1/leads?limit=1")  # warm any per-process caches out of the measurement

    small, small_queries = queries_for(lambda: post_batch(api, _create_items(50, owner.pk, "small")))
    large, large_queries = queries_for(lambda: post_batch(api, _create_items(500, owner.pk, "large")))

    assert [r["status"] for r in report(small)] == [201] * 50
    assert [r["status"] for r in report(large)] == [201] * 500
    assert small_queries == large_queries
    assert count(account) == 550


def test_batch_create_with_on_duplicate_update_of_50_and_of_500_issue_the_same_number_of_queries(api, account):
    owner = MembershipFactory(account=account).user
    _seed(account, 25, "small")
    _seed(account, 250, "large")
    api.get("/api/v1/leads?limit=1")

    small, small_queries = queries_for(
        lambda: post_batch(api, _create_items(50, owner.pk, "small"), on_duplicate="update")
    )
    large, large_queries = queries_for(
        lambda: post_batch(api, _create_items(500, owner.pk, "large"), on_duplicate="update")
    )

    assert sorted(r["outcome"] for r in report(small)) == ["created"] * 25 + ["updated"] * 25
    assert sorted(r["outcome"] for r in report(large)) == ["created"] * 250 + ["updated"] * 250
    assert small_queries == large_queries


def test_batch_update_of_50_and_of_500_leads_issue_the_same_number_of_queries(api, account):
    owner = MembershipFactory(account=account).user
    small_leads, large_leads = _seed(account, 50, "small"), _seed(account, 500, "large")
    api.get("/api/v1/leads?limit=1")

    def items(leads):
        return [
            {
                "id": str(lead.pk),
                "city": "Berlin",
                "owner": owner.pk,
                "add_tags": ["new"],
                "remove_tags": ["seed"],
                "email": f"renamed-{lead.email}",
                "phone": f"+1 202 555 {i:04d}",
            }
            for i, lead in enumerate(leads)
        ]

    small, small_queries = queries_for(lambda: put_batch(api, items(small_leads)))
    large, large_queries = queries_for(lambda: put_batch(api, items(large_leads)))

    assert [r["status"] for r in report(small)] == [200] * 50
    assert [r["status"] for r in report(large)] == [200] * 500
    assert small_queries == large_queries
    assert Lead.objects.filter(account=account, city="Berlin", tags=["new"]).count() == 550


def test_batch_delete_of_50_and_of_500_leads_issue_the_same_number_of_queries(api, account):
    small_leads, large_leads = _seed(account, 50, "small"), _seed(account, 500, "large")
    api.get("/api/v1/leads?limit=1")

    small, small_queries = queries_for(lambda: delete_batch(api, [str(lead.pk) for lead in small_leads]))
    large, large_queries = queries_for(lambda: delete_batch(api, [str(lead.pk) for lead in large_leads]))

    assert [r["status"] for r in report(small)] == [204] * 50
    assert [r["status"] for r in report(large)] == [204] * 500
    assert small_queries == large_queries
    assert count(account) == 0
