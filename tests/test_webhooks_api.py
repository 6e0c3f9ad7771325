"""Webhook subscriptions (admin scope, SSRF-checked URLs, a secret shown once) and the events
feed (`GET /api/v1/events`: cursor, type, since) through the API (§4.10, issue 6). A batch of 500
creates writes 500 events in as many queries as a batch of 50, and the feed pages through them
exactly once.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.scopes import ADMIN, LEADS_READ, LEADS_WRITE
from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from webhooks import tasks
from webhooks.models import Event, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db

WEBHOOKS = "/api/v1/webhooks"
EVENTS = "/api/v1/events"
LEADS = "/api/v1/leads"
PUBLIC_URL = "http://93.184.216.34/hooks/leadbase"  # a literal public address: no DNS needed
PUBLIC_HTTPS_URL = "https://93.184.216.34/hooks/leadbase"


@pytest.fixture(autouse=True)
def no_delivery(monkeypatch):
    """Nothing here is delivered: these tests are about what is stored and served."""
    monkeypatch.setattr(tasks.deliver_due, "delay", lambda *args, **kwargs: None)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert (body["code"], body["status"], body["type"]) == (code, status, PROBLEM_TYPE_BASE + code)
    assert ERROR_CODES[code][0] == status
    return body


def error_fields(body: dict) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


def subscribe(api, url: str = PUBLIC_URL, **extra):
    return api.post(WEBHOOKS, {"url": url, **extra}, format="json")


def make_webhook(api, url: str = PUBLIC_URL, **extra) -> dict:
    response = subscribe(api, url, **extra)
    assert response.status_code == 201, response.content
    return response.json()


def batch_create(api, count: int, tag: str = "l"):
    leads = [{"email": f"{tag}{i}@example.com"} for i in range(count)]
    response = api.post(f"{LEADS}/batch", {"leads": leads}, format="json")
    assert response.status_code == 207, response.content
    return response


# --- subscriptions CRUD ---------------------------------------------------------------------


def test_creating_a_webhook_answers_201_with_its_secret_shown_once(api, account):
    response = subscribe(api, event_types=["lead.updated", "lead.created", "lead.created"], description="CRM sync")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"] == PUBLIC_URL
    assert body["event_types"] == ["lead.created", "lead.updated"]
    assert (body["active"], body["description"], body["disabled_at"], body["failing_since"]) == (
        True, "CRM sync", None, None,
    )  # fmt: skip
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    stored = WebhookSubscription.objects.get(pk=body["id"])
    assert (stored.account_id, stored.secret) == (account.pk, body["secret"])


def test_list_get_and_update_never_show_the_secret(api):
    hook = make_webhook(api)

    listed = api.get(WEBHOOKS)
    shown = api.get(f"{WEBHOOKS}/{hook['id']}")
    patched = api.patch(f"{WEBHOOKS}/{hook['id']}", {"description": "renamed"}, format="json")

    assert listed.status_code == shown.status_code == patched.status_code == 200
    (item,) = listed.json()["results"]
    for body in (item, shown.json(), patched.json()):
        assert body["id"] == hook["id"]
        assert "secret" not in body and "previous_secret" not in body
        assert hook["secret"] not in str(body)
    assert patched.json()["description"] == "renamed"


def test_rotating_the_secret_shows_the_new_one_once_and_keeps_the_old_one_for_the_overlap(api):
    hook = make_webhook(api)

    response = api.post(f"{WEBHOOKS}/{hook['id']}/rotate-secret", {"overlap_hours": 12}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != hook["secret"]
    stored = WebhookSubscription.objects.get(pk=hook["id"])
    assert (stored.secret, stored.previous_secret) == (body["secret"], hook["secret"])
    expected_end = timezone.now() + timedelta(hours=12)
    assert abs((stored.previous_secret_expires_at - expected_end).total_seconds()) < 60
    assert "secret" not in api.get(f"{WEBHOOKS}/{hook['id']}").json()


@pytest.mark.parametrize("overlap", [-1, 169, "soon"])
def test_rotating_with_an_overlap_outside_0_to_168_hours_is_400(api, overlap):
    hook = make_webhook(api)

    response = api.post(f"{WEBHOOKS}/{hook['id']}/rotate-secret", {"overlap_hours": overlap}, format="json")

    assert "overlap_hours" in error_fields(assert_problem(response, 400, "validation_error"))
    assert WebhookSubscription.objects.get(pk=hook["id"]).previous_secret == ""


def test_updating_url_event_types_and_active_flag(api):
    hook = make_webhook(api)

    response = api.patch(
        f"{WEBHOOKS}/{hook['id']}",
        {"url": PUBLIC_HTTPS_URL, "event_types": ["lead.deleted"], "active": False},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["url"], body["event_types"], body["active"]) == (PUBLIC_HTTPS_URL, ["lead.deleted"], False)


def test_deleting_a_webhook_removes_it_and_its_delivery_log(api):
    hook = make_webhook(api)
    batch_create(api, 2)
    assert WebhookDelivery.objects.count() == 2

    assert api.delete(f"{WEBHOOKS}/{hook['id']}").status_code == 204

    assert_problem(api.get(f"{WEBHOOKS}/{hook['id']}"), 404, "not_found")
    assert WebhookDelivery.objects.count() == 0
    assert Event.objects.count() == 2  # the feed keeps its history


def test_an_inactive_webhook_gets_no_deliveries_for_new_events(api):
    hook = make_webhook(api, active=False)
    make_webhook(api, event_types=["lead.deleted"])

    batch_create(api, 3)

    assert Event.objects.count() == 3
    assert WebhookDelivery.objects.count() == 0
    assert api.get(f"{WEBHOOKS}/{hook['id']}/deliveries").json()["results"] == []


def test_reactivating_a_disabled_webhook_clears_its_failure_flag(api):
    hook = make_webhook(api)
    WebhookSubscription.objects.filter(pk=hook["id"]).update(
        active=False,
        failing_since=timezone.now() - timedelta(days=4),
        disabled_at=timezone.now(),
        disabled_reason="Failing since 2025-01-01 00:00 UTC",
    )
    assert api.get(f"{WEBHOOKS}/{hook['id']}").json()["disabled_reason"]

    response = api.patch(f"{WEBHOOKS}/{hook['id']}", {"active": True}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    flags = (body["active"], body["failing_since"], body["disabled_at"], body["disabled_reason"])
    assert flags == (True, None, None, "")


@pytest.mark.parametrize(
    "body, code, field",
    [
        ({"url": PUBLIC_URL, "event_types": ["lead.exploded"]}, "validation_error", "event_types"),
        ({"url": PUBLIC_URL, "event_types": ["webhook.test"]}, "validation_error", "event_types"),
        ({"url": PUBLIC_URL, "event_types": "lead.created"}, "validation_error", "event_types"),
        ({"event_types": ["lead.created"]}, "validation_error", "url"),
        ({"url": PUBLIC_URL, "colour": "blue"}, "unknown_field", "colour"),
        ({"url": PUBLIC_URL, "secret": "whsec_mine"}, "read_only_field", "secret"),
    ],
    ids=["unknown-type", "test-type", "types-not-a-list", "no-url", "unknown-field", "secret-read-only"],
)
def test_invalid_subscriptions_are_400_naming_the_field(api, body, code, field):
    response = api.post(WEBHOOKS, body, format="json")

    problem = assert_problem(response, 400, code)
    assert any(f.split(".")[0].split("[")[0] == field for f in error_fields(problem)), problem
    assert WebhookSubscription.objects.count() == 0


def test_updating_to_an_unknown_event_type_is_400_and_changes_nothing(api):
    hook = make_webhook(api, event_types=["lead.created"])

    response = api.patch(f"{WEBHOOKS}/{hook['id']}", {"event_types": ["lead.nope"]}, format="json")

    assert_problem(response, 400, "validation_error")
    assert WebhookSubscription.objects.get(pk=hook["id"]).event_types == ["lead.created"]


# --- URL validation (SSRF) ----------------------------------------------------------------------


UNSAFE_URLS = [
    "http://127.0.0.1/x",
    "http://10.0.0.1/x",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/",
    "http://localhost/x",
    "http://localhost.:8080/x",
    "http://172.16.5.4/x",
    "http://192.168.1.10/x",
    "http://100.64.0.1/x",
    "http://0.0.0.0/x",
    "http://[fe80::1]/x",
    "http://[fd00::1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://2130706433/x",
    "http://0x7f.1/x",
    "http://224.0.0.1/x",
    "http://240.0.0.1/x",
]


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_a_loopback_private_link_local_or_metadata_target_is_refused_when_private_targets_are_not_allowed(
    api, settings, url
):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False

    response = subscribe(api, url)

    problem = assert_problem(response, 400, "validation_error")
    assert error_fields(problem) == ["url"]
    assert problem["errors"][0]["code"] == "unsafe_url"
    assert WebhookSubscription.objects.count() == 0


def test_a_hostname_resolving_to_loopback_is_refused_naming_the_address(api, settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False

    problem = assert_problem(subscribe(api, "http://localhost:8080/hook"), 400, "validation_error")

    assert "127.0.0.1" in problem["errors"][0]["message"]


def test_changing_the_url_to_a_private_target_is_refused_too(api, settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False
    hook = make_webhook(api)

    response = api.patch(f"{WEBHOOKS}/{hook['id']}", {"url": "http://10.1.2.3/x"}, format="json")

    assert error_fields(assert_problem(response, 400, "validation_error")) == ["url"]
    assert WebhookSubscription.objects.get(pk=hook["id"]).url == PUBLIC_URL


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/x", "http://10.0.0.1/x", "http://localhost/x"])
def test_private_targets_are_accepted_when_the_setting_allows_them(api, settings, url):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True

    assert subscribe(api, url).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/latest/meta-data",
        "http://2852039166/latest/meta-data",
        "http://[fd00:ec2::254]/latest/meta-data",
    ],
)
def test_the_cloud_metadata_address_is_refused_even_when_private_targets_are_allowed(api, settings, url):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True

    problem = assert_problem(subscribe(api, url), 400, "validation_error")

    assert error_fields(problem) == ["url"]


@pytest.mark.parametrize(
    "url",
    ["http://user:pass@93.184.216.34/x", "http://token@93.184.216.34/x", "https://:secret@93.184.216.34/x"],
)
def test_credentials_in_the_url_are_refused(api, url):
    problem = assert_problem(subscribe(api, url), 400, "validation_error")

    assert error_fields(problem) == ["url"]
    assert "Credentials" in problem["errors"][0]["message"]


@pytest.mark.parametrize(
    "url",
    ["ftp://93.184.216.34/x", "file:///etc/passwd", "gopher://93.184.216.34/", "not a url", "http:///x",
     "http://93.184.216.34:99999/x", "http://nonexistent.invalid/x", "http://93.184.216.34/caf\u00e9",
     "http://93.184.216.34/a b", "http://93.184.216.34/a\r\nX-Injected: 1", "http://93.184.216.34/\x00"],
)  # fmt: skip
def test_urls_we_cannot_or_will_not_post_to_are_refused(api, url):
    assert error_fields(assert_problem(subscribe(api, url), 400, "validation_error")) == ["url"]


def test_in_production_only_https_targets_are_accepted(api, settings):
    settings.PRODUCTION = True
    settings.LEADBASE_WEBHOOKS_ALLOW_HTTP = False

    assert error_fields(assert_problem(subscribe(api, PUBLIC_URL), 400, "validation_error")) == ["url"]
    assert subscribe(api, PUBLIC_HTTPS_URL).status_code == 201


# --- scopes and tenancy -----------------------------------------------------------------------


def _webhook_calls(hook_id, delivery_id):
    return [
        ("get", WEBHOOKS, None),
        ("post", WEBHOOKS, {"url": PUBLIC_URL}),
        ("get", f"{WEBHOOKS}/{hook_id}", None),
        ("patch", f"{WEBHOOKS}/{hook_id}", {"description": "x"}),
        ("delete", f"{WEBHOOKS}/{hook_id}", None),
        ("post", f"{WEBHOOKS}/{hook_id}/rotate-secret", {}),
        ("post", f"{WEBHOOKS}/{hook_id}/test", None),
        ("get", f"{WEBHOOKS}/{hook_id}/deliveries", None),
        ("post", f"{WEBHOOKS}/{hook_id}/deliveries/{delivery_id}/redeliver", None),
    ]


def test_every_webhook_operation_needs_the_admin_scope(api, account, make_client):
    hook = make_webhook(api)
    batch_create(api, 1)
    delivery = WebhookDelivery.objects.get()
    writer = make_client(account, scopes=[LEADS_READ, LEADS_WRITE])

    for method, path, body in _webhook_calls(hook["id"], delivery.pk):
        response = getattr(writer, method)(path, body, format="json")
        assert_problem(response, 403, "insufficient_scope")
    assert WebhookSubscription.objects.get().description == ""
    assert WebhookDelivery.objects.get().attempts == 0


def test_the_events_feed_needs_leads_read(account, make_client):
    assert make_client(account, scopes=[LEADS_READ]).get(EVENTS).status_code == 200
    assert_problem(make_client(account, scopes=[ADMIN]).get(EVENTS), 403, "insufficient_scope")


def test_another_accounts_webhooks_and_deliveries_are_404(api, other_api, monkeypatch):
    theirs = make_webhook(other_api)
    batch_create(other_api, 1)
    their_delivery = WebhookDelivery.objects.get()
    mine = make_webhook(api)

    for method, path, body in _webhook_calls(theirs["id"], their_delivery.pk)[2:]:
        response = getattr(api, method)(path, body, format="json")
        assert_problem(response, 404, "not_found")
    # my webhook, their delivery id
    response = api.post(f"{WEBHOOKS}/{mine['id']}/deliveries/{their_delivery.pk}/redeliver")
    assert_problem(response, 404, "not_found")
    assert_problem(api.post(f"{WEBHOOKS}/{mine['id']}/deliveries/not-a-uuid/redeliver"), 404, "not_found")
    assert [w["id"] for w in api.get(WEBHOOKS).json()["results"]] == [mine["id"]]
    assert WebhookSubscription.objects.get(pk=theirs["id"]).secret == theirs["secret"]
    assert WebhookDelivery.objects.get().attempts == 0


def test_an_accounts_events_are_delivered_only_to_its_own_subscriptions(api, other_api):
    mine = make_webhook(api)
    make_webhook(other_api)

    batch_create(api, 3)

    assert set(WebhookDelivery.objects.values_list("subscription_id", flat=True)) == {mine["id"]}


def test_the_delivery_log_lists_deliveries_newest_first_and_filters_by_status(api):
    hook = make_webhook(api)
    batch_create(api, 3)
    WebhookDelivery.objects.filter(pk=WebhookDelivery.objects.order_by("created_at").first().pk).update(status="failed")

    listed = api.get(f"{WEBHOOKS}/{hook['id']}/deliveries").json()["results"]
    failed = api.get(f"{WEBHOOKS}/{hook['id']}/deliveries", {"status": "failed"}).json()["results"]

    assert len(listed) == 3
    assert [d["created_at"] for d in listed] == sorted((d["created_at"] for d in listed), reverse=True)
    assert all(d["event_type"] == "lead.created" and d["attempt_log"] == [] for d in listed)
    assert [d["status"] for d in failed] == ["failed"]
    assert_problem(api.get(f"{WEBHOOKS}/{hook['id']}/deliveries", {"limit": 0}), 400, "invalid_parameter")


# --- the events feed ----------------------------------------------------------------------------


def read_feed(client, **params) -> dict:
    response = client.get(EVENTS, params)
    assert response.status_code == 200, response.content
    return response.json()


def page_through(client, limit: int = 100, **params) -> tuple[list[dict], int, str]:
    """Follow next_cursor until has_more is false: (events, pages, last cursor)."""
    events, pages, cursor = [], 0, None
    while True:
        page = read_feed(client, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        events += page["results"]
        pages += 1
        cursor = page["next_cursor"]
        assert cursor, "next_cursor is returned on every page"
        if not page["has_more"]:
            return events, pages, cursor


def test_the_feed_pages_through_500_events_of_one_batch_exactly_once_in_order(api, account):
    response = batch_create(api, 500)
    lead_ids = [r["id"] for r in response.json()["results"]]

    events, pages, cursor = page_through(api, limit=100)

    assert pages == 5
    assert len(events) == 500
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))  # strictly increasing: none twice, none skipped over
    assert [e["data"]["lead"]["id"] for e in events] == lead_ids
    assert {e["type"] for e in events} == {"lead.created"}
    assert {e["account"] for e in events} == {account.pk}
    empty = read_feed(api, cursor=cursor)
    assert (empty["results"], empty["has_more"], empty["next_cursor"]) == ([], False, cursor)


def test_polling_with_the_last_cursor_returns_only_what_happened_since(api):
    batch_create(api, 3, tag="first")
    _, _, cursor = page_through(api)

    assert read_feed(api, cursor=cursor)["results"] == []
    batch_create(api, 2, tag="second")
    page = read_feed(api, cursor=cursor)

    assert [e["data"]["lead"]["email"] for e in page["results"]] == ["second0@example.com", "second1@example.com"]
    assert page["next_cursor"] != cursor
    assert read_feed(api, cursor=page["next_cursor"])["results"] == []


def test_an_empty_feed_answers_an_empty_page(api):
    page = read_feed(api)

    assert (page["results"], page["has_more"]) == ([], False)


def _changes(api) -> str:
    lead = api.post(LEADS, {"email": "ada@example.com"}, format="json").json()["id"]
    api.patch(f"{LEADS}/{lead}", {"city": "Oslo"}, format="json")
    api.delete(f"{LEADS}/{lead}")
    return lead


@pytest.mark.parametrize(
    "types, expected",
    [
        ("lead.updated", ["lead.updated"]),
        ("lead.created,lead.deleted", ["lead.created", "lead.deleted"]),
        ("lead.scored", []),
    ],
)
def test_the_type_filter_returns_only_those_event_types(api, types, expected):
    lead = _changes(api)

    events = read_feed(api, type=types)["results"]

    assert [e["type"] for e in events] == expected
    assert all(e["data"]["lead"]["id"] == lead for e in events)


def test_the_type_filter_pages_with_its_cursor(api):
    batch_create(api, 5)
    _changes(api)

    events, pages, _ = page_through(api, limit=2, type="lead.created")

    assert len(events) == 6 and pages == 3
    assert {e["type"] for e in events} == {"lead.created"}


def test_the_since_filter_returns_events_created_at_or_after_it(api):
    batch_create(api, 4)
    old = list(Event.objects.order_by("id").values_list("pk", flat=True)[:2])
    Event.objects.filter(pk__in=old).update(created_at=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")

    events = read_feed(api, since=since)["results"]

    assert len(events) == 2
    assert not {int(e["id"]) for e in events} & set(old)


@pytest.mark.parametrize(
    "params, code",
    [
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"since": "yesterday"}, "invalid_parameter"),
        ({"type": "lead.exploded"}, "invalid_parameter"),
        ({"limit": 0}, "invalid_parameter"),
        ({"limit": 501}, "invalid_parameter"),
        ({"page": 2}, "invalid_parameter"),
        ({"account": 1}, "invalid_parameter"),
    ],
    ids=["bad-cursor", "bad-since", "unknown-type", "limit-0", "limit-501", "unknown-page", "unknown-account"],
)
def test_bad_feed_parameters_are_400(api, params, code):
    assert_problem(api.get(EVENTS, params), 400, code)


def test_a_tampered_cursor_is_400_invalid_cursor(api):
    batch_create(api, 3)
    cursor = read_feed(api, limit=1)["next_cursor"]
    value, signature = cursor.rsplit(":", 1)
    tampered = value.replace(value[0], "A" if value[0] != "A" else "B", 1) + ":" + signature

    assert_problem(api.get(EVENTS, {"cursor": tampered}), 400, "invalid_cursor")
    assert_problem(api.get(EVENTS, {"cursor": cursor[:-2]}), 400, "invalid_cursor")


def test_another_accounts_cursor_is_400_invalid_cursor(api, other_api):
    batch_create(other_api, 2)
    theirs = read_feed(other_api, limit=1)["next_cursor"]

    assert_problem(api.get(EVENTS, {"cursor": theirs}), 400, "invalid_cursor")


def test_another_accounts_events_never_appear_in_the_feed(api, other_api, account):
    batch_create(other_api, 5, tag="theirs")
    batch_create(api, 2, tag="mine")
    batch_create(other_api, 5, tag="theirs-again")

    events, _, _ = page_through(api, limit=1)

    assert [e["data"]["lead"]["email"] for e in events] == ["mine0@example.com", "mine1@example.com"]
    assert {e["account"] for e in events} == {account.pk}


# --- one event per lead, set-based --------------------------------------------------------------


def test_a_batch_of_50_and_of_500_creates_with_2_subscriptions_issue_the_same_number_of_queries(
    api, django_capture_on_commit_callbacks
):
    make_webhook(api)
    make_webhook(api, url=PUBLIC_HTTPS_URL, event_types=["lead.created"])
    make_webhook(api, url="https://93.184.216.35/x", event_types=["lead.deleted"])  # wants none of these

    counts = []
    for size, tag in [(50, "small"), (500, "large")]:
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            batch_create(api, size, tag=tag)
        counts.append(len(queries.captured_queries))
        assert Event.objects.filter(data__lead__email__startswith=tag).count() == size
        assert WebhookDelivery.objects.filter(event__data__lead__email__startswith=tag).count() == 2 * size

    assert counts[0] == counts[1], counts
    assert Event.objects.count() == 550
    assert WebhookDelivery.objects.count() == 1100
