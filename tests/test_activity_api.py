"""A lead's timeline (§4.2 `GET /api/v1/leads/{id}/activity`): its events from the outbox
(lead.created, lead.updated with each changed field before and after, lead.scored) merged with its
notes, newest first, on the signed keyset cursor; tenancy, scopes, and a query count that does not
grow with the page size."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import unquote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from leads import selectors
from leads.models import Note
from webhooks.models import Event

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert (body["code"], body["type"], ERROR_CODES[code][0]) == (code, PROBLEM_TYPE_BASE + code, status)
    return body


def activity(client, lead_id, **params):
    return client.get(f"{LEADS}/{lead_id}/activity", params)


@pytest.fixture
def rule(api, django_capture_on_commit_callbacks):
    """A scoring rule (company contains "acme", 40 points), with its recalculation job run."""
    body = {"name": "Acme", "field": "company", "operator": "contains", "value": "acme", "points": 40}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/scoring-rules", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def history(api, rule) -> dict:
    """A lead created, then updated (which rescores it), then noted, all through the API."""
    created = api.post(LEADS, {"email": "ann@initech.example", "company": "Initech"}, format="json")
    assert created.status_code == 201, created.content
    lead_id = created.json()["id"]
    updated = api.patch(f"{LEADS}/{lead_id}", {"company": "Acme Labs", "status": "contacted"}, format="json")
    assert updated.status_code == 200, updated.content
    note = api.post(f"{LEADS}/{lead_id}/notes", {"body": "Called, wants a demo."}, format="json")
    assert note.status_code == 201, note.content
    return {"lead_id": lead_id, "note": note.json()}


def walk(client, lead_id, limit: int) -> list[dict]:
    """Every item of the timeline, page by page."""
    items, cursor = [], None
    for _ in range(1000):
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = activity(client, lead_id, **params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) <= limit
        items += body["results"]
        cursor = body["next_cursor"]
        assert body["has_more"] is (cursor is not None)
        if cursor is None:
            return items
    raise AssertionError("the walk did not end")


def key_of(item: dict) -> tuple:
    return ("note", item["note"]["id"]) if item["note"] else ("event", item["event_id"])


# --- content --------------------------------------------------------------------------------------


def test_the_timeline_lists_note_score_update_and_creation_newest_first(api, history):
    body = activity(api, history["lead_id"]).json()
    assert [item["type"] for item in body["results"]] == ["note.added", "lead.updated", "lead.scored", "lead.created"]
    assert body["has_more"] is False and body["next_cursor"] is None
    note, updated, scored, created = body["results"]
    assert note["note"] == history["note"] and note["event_id"] is None
    assert note["changes"] is None and note["score"] is None
    assert updated["changes"] == {
        "company": {"before": "Initech", "after": "Acme Labs"},
        "status": {"before": "new", "after": "contacted"},
    }
    assert updated["score"] is None and updated["note"] is None
    assert scored["score"]["previous"] == 0 and scored["score"]["current"] == 40
    assert [hit["name"] for hit in scored["score"]["breakdown"]] == ["Acme"]
    assert created["changes"] is None and created["score"] is None
    times = [item["created_at"] for item in body["results"]]
    assert times == sorted(times, reverse=True) and all(t.endswith("Z") for t in times)


def test_event_ids_are_the_ids_of_the_change_feed(api, history):
    items = activity(api, history["lead_id"]).json()["results"]
    feed = {e["id"]: e for e in api.get("/api/v1/events", {"limit": 500}).json()["results"]}
    for item in items:
        if item["event_id"] is not None:
            assert feed[item["event_id"]]["type"] == item["type"]
            assert feed[item["event_id"]]["data"].get("lead", {}).get("id", history["lead_id"]) == history["lead_id"]


def test_another_leads_events_and_notes_are_not_in_the_timeline(api, history):
    other = api.post(LEADS, {"email": "bob@example.org"}, format="json").json()["id"]
    api.post(f"{LEADS}/{other}/notes", {"body": "not this one"}, format="json")
    items = activity(api, history["lead_id"]).json()["results"]
    assert len(items) == 4 and "not this one" not in str(items)
    assert [item["type"] for item in activity(api, other).json()["results"]] == ["note.added", "lead.created"]


def test_a_lead_written_straight_to_the_table_has_an_empty_timeline(api, account):
    lead = LeadFactory(account=account)
    assert activity(api, lead.pk).json() == {"results": [], "next_cursor": None, "has_more": False}


def test_a_trailing_slash_is_served_too(api, history):
    response = api.get(f"{LEADS}/{history['lead_id']}/activity/")
    assert response.status_code == 200 and len(response.json()["results"]) == 4


# --- tenancy and scopes ---------------------------------------------------------------------------


def test_another_accounts_lead_is_404_and_shows_nothing(history, other_api):
    body = assert_problem(activity(other_api, history["lead_id"]), 404, "not_found")
    assert "Initech" not in str(body) and "demo" not in str(body)


@pytest.mark.parametrize("lead_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_or_malformed_lead_id_is_404(api, lead_id):
    assert_problem(activity(api, lead_id), 404, "not_found")


def test_the_read_scope_is_enough_and_required(account, history, make_client):
    assert activity(make_client(account, scopes=["leads:read"]), history["lead_id"]).status_code == 200
    assert_problem(
        activity(make_client(account, scopes=["leads:write"]), history["lead_id"]), 403, "insufficient_scope"
    )


def test_without_credentials_it_is_401(client, history):
    assert_problem(client.get(f"{LEADS}/{history['lead_id']}/activity"), 401, "authentication_required")


# --- pagination -----------------------------------------------------------------------------------


def test_pages_link_to_the_next_page(api, history):
    response = activity(api, history["lead_id"], limit=3)
    body = response.json()
    assert [item["type"] for item in body["results"]] == ["note.added", "lead.updated", "lead.scored"]
    assert body["has_more"] is True
    assert response["Link"].endswith('>; rel="next"') and body["next_cursor"] in unquote(response["Link"])
    rest = activity(api, history["lead_id"], limit=3, cursor=body["next_cursor"]).json()
    assert [item["type"] for item in rest["results"]] == ["lead.created"] and rest["next_cursor"] is None


@pytest.fixture
def busy_lead(account):
    """A lead with 12 events and 9 notes, three to a second: several events and notes share one
    timestamp, so only the (created_at, source, id) order tells them apart."""
    lead = LeadFactory(account=account)
    base = timezone.now() - dt.timedelta(hours=1)
    times = [base + dt.timedelta(seconds=n // 3) for n in range(21)]
    Event.objects.bulk_create(
        [Event(account=account, type="lead.updated", lead_id=lead.pk, data={"changes": {}}) for _ in range(12)]
    )
    notes = Note.objects.bulk_create([Note(account=account, lead=lead, body=f"note {n}") for n in range(9)])
    ids = sorted(Event.objects.filter(lead_id=lead.pk).values_list("id", flat=True))
    for pk, when in zip(ids, times[::2] + times[1::2], strict=False):
        Event.objects.filter(pk=pk).update(created_at=when)
    for note, when in zip(notes, times[1::2], strict=False):
        Note.objects.filter(pk=note.pk).update(created_at=when)
    return lead


@pytest.mark.parametrize("limit", [1, 2, 4, 5, 20, 21, 500])
def test_walking_every_page_returns_each_item_once_in_the_order_of_one_page(api, busy_lead, limit):
    whole = activity(api, busy_lead.pk, limit=500).json()["results"]
    assert len(whole) == 21
    walked = walk(api, busy_lead.pk, limit)
    assert [key_of(i) for i in walked] == [key_of(i) for i in whole]
    assert len({key_of(i) for i in walked}) == 21
    stamps = [(i["created_at"], i["note"] is not None) for i in walked]
    assert stamps == sorted(stamps, reverse=True)


def test_items_added_while_walking_do_not_repeat_or_hide_older_ones(api, busy_lead, account):
    first = activity(api, busy_lead.pk, limit=7).json()
    Note.objects.create(account=account, lead=busy_lead, body="newer than every page")
    rest = walk_from(api, busy_lead.pk, first["next_cursor"])
    keys = [key_of(i) for i in first["results"] + rest]
    assert len(keys) == len(set(keys)) == 21


def walk_from(client, lead_id, cursor) -> list[dict]:
    items = []
    while cursor:
        body = activity(client, lead_id, limit=7, cursor=cursor).json()
        items += body["results"]
        cursor = body["next_cursor"]
    return items


def test_a_cursor_of_another_lead_is_refused(api, busy_lead, history):
    cursor = activity(api, busy_lead.pk, limit=2).json()["next_cursor"]
    assert_problem(activity(api, history["lead_id"], cursor=cursor), 400, "invalid_cursor")


def test_a_cursor_of_another_list_is_refused(api, busy_lead):
    for _ in range(3):
        api.post(f"{LEADS}/{busy_lead.pk}/notes", {"body": "x"}, format="json")
    notes_cursor = api.get(f"{LEADS}/{busy_lead.pk}/notes", {"limit": 1}).json()["next_cursor"]
    assert_problem(activity(api, busy_lead.pk, cursor=notes_cursor), 400, "invalid_cursor")


@pytest.mark.parametrize("cursor", ["garbage", "eyJzIjoiYWN0aXZpdHkifQ:tampered"])
def test_a_tampered_cursor_is_refused(api, busy_lead, cursor):
    assert_problem(activity(api, busy_lead.pk, cursor=cursor), 400, "invalid_cursor")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "invalid_parameter"),
        ({"limit": "501"}, "invalid_parameter"),
        ({"sort": "x"}, "invalid_parameter"),
    ],
)
def test_bad_parameters_are_400(api, busy_lead, params, code):
    assert_problem(activity(api, busy_lead.pk, **params), 400, code)


# --- cost -----------------------------------------------------------------------------------------


def test_the_query_count_does_not_grow_with_the_page_size(api, busy_lead, django_assert_num_queries):
    activity(api, busy_lead.pk, limit=1)  # with Redis, the key is cached from here on (accounts/credentials.py)
    with CaptureQueriesContext(connection) as small_page:
        small = activity(api, busy_lead.pk, limit=2)
    # Authentication costs what it costs; the timeline adds three: the lead, its events, its notes.
    assert sum('"webhooks_event"' in q["sql"] or '"leads_note"' in q["sql"] for q in small_page.captured_queries) == 2
    with django_assert_num_queries(len(small_page.captured_queries)):
        large = activity(api, busy_lead.pk, limit=500)
    assert len(small.json()["results"]) == 2 and len(large.json()["results"]) == 21


def test_the_selector_reads_each_source_once_after_a_cursor(account, busy_lead):
    first = selectors.lead_activity(account=account, lead_id=busy_lead.pk, limit=4)
    with CaptureQueriesContext(connection) as ctx:
        page = selectors.lead_activity(account=account, lead_id=busy_lead.pk, cursor=first.next_cursor, limit=4)
    assert len(page.items) == 4 and len(ctx.captured_queries) == 3
    assert all("OFFSET" not in q["sql"].upper() for q in ctx.captured_queries)


@pytest.mark.postgres
def test_on_postgresql_the_events_of_a_lead_are_read_from_the_timeline_index(account, busy_lead):
    leads = [uuid.uuid4() for _ in range(200)]
    Event.objects.bulk_create(
        [Event(account=account, type="lead.updated", lead_id=leads[n % 200], data={}) for n in range(20_000)]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webhooks_event")
    first = selectors.lead_activity(account=account, lead_id=busy_lead.pk, limit=4)
    with CaptureQueriesContext(connection) as ctx:
        selectors.lead_activity(account=account, lead_id=busy_lead.pk, cursor=first.next_cursor, limit=4)
    (sql,) = [q["sql"] for q in ctx.captured_queries if '"webhooks_event"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "event_acct_lead_created_idx" in plan, plan
    assert "Sort" not in plan, plan  # the index yields the newest-first order itself
