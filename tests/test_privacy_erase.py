"""Privacy (§4.12): erasing a lead and the account's suppression list.

`POST /leads/{id}/erase` (admin) deletes the lead and its notes, erases the personal data in its
events (the feed, pending deliveries, receivers' response snippets), suppresses the email as a keyed
hash so every create path refuses it with 409 `suppressed` until an admin lifts it, and is audited
without personal data. docs/privacy.md describes what is removed and what is kept.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry, Role
from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE, Suppressed
from core.models import IdempotencyKey
from leads import services
from leads.models import Lead, Note, Suppression
from leads.suppression import email_hash
from webhooks import services as webhook_services
from webhooks.models import DeliveryAttempt, Event, WebhookDelivery

from .webhook_receiver import Receiver, Reply

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"
SUPPRESSIONS = "/api/v1/suppressions"
EMAIL = "ada.lovelace@example.com"
PERSON = {
    "email": "  Ada.Lovelace@Example.COM ",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines",
    "job_title": "Countess",
    "website": "https://ada.example",
    "city": "Marylebone",
    "phone": "+442071234567",
    "external_id": "crm-1815",
    "custom_fields": {"favourite": "Bernoulli numbers"},
    "tags": ["vip"],
}
PERSONAL_STRINGS = [EMAIL, "Lovelace", "Analytical Engines", "Countess", "ada.example", "Marylebone", "+442071234567"]
PERSONAL_STRINGS += ["crm-1815", "Bernoulli"]


@pytest.fixture(autouse=True)
def private_targets_allowed(settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver lives on 127.0.0.1


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["type"] == PROBLEM_TYPE_BASE + code
    assert ERROR_CODES[code][0] == status
    return body


def create(api, body: dict | None = None, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = api.post(f"{LEADS}?{query}" if query else LEADS, body or PERSON, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def erase(api, lead_id: str, **headers):
    return api.post(f"{LEADS}/{lead_id}/erase", format="json", **headers)


def erased(api, lead_id: str) -> dict:
    response = erase(api, lead_id)
    assert response.status_code == 200, response.content
    return response.json()


def stored_text() -> str:
    """Everything the events outbox, the deliveries and their attempts hold, as one text."""
    parts = [json.dumps(list(Event.objects.values("type", "data")))]
    parts.append(json.dumps(list(WebhookDelivery.objects.values("status", "last_status_code")), default=str))
    parts.append(json.dumps(list(DeliveryAttempt.objects.values("response_snippet", "error"))))
    return "\n".join(parts)


# --- erase ------------------------------------------------------------------------------------------


def test_erase_deletes_the_lead_and_notes_and_leaves_no_personal_data_in_events_or_deliveries(api, account):
    other = create(api, {"email": "grace@example.com", "city": "Arlington"})
    # A receiver that fails and echoes what it was sent (the snippet of its answer is logged).
    with Receiver(default=Reply(500, body=b'{"error": "cannot store ada.lovelace@example.com"}')) as receiver:
        hook = api.post("/api/v1/webhooks", {"url": receiver.url}, format="json")
        assert hook.status_code == 201, hook.content
        lead = create(api)
        assert api.patch(f"{LEADS}/{lead['id']}", {"city": "London", "status": "contacted"}, format="json").status_code
        assert api.post(f"{LEADS}/{lead['id']}/notes", {"body": "Called Ada about engines"}, format="json")
        webhook_services.deliver_due()  # every delivery fails once; the receiver echoed the email back
        assert EMAIL in stored_text() and "Marylebone" in stored_text()
        assert DeliveryAttempt.objects.filter(response_snippet__contains=EMAIL).exists()
        lead_events_before = Event.objects.filter(lead_id=lead["id"]).count()

        body = erased(api, lead["id"])

        assert body["id"] == lead["id"] and body["suppressed"] is True
        assert body["email_hash"] == email_hash(account=account, email=EMAIL)
        assert body["events_erased"] == lead_events_before and body["notes_deleted"] == 1
        assert not Lead.objects.filter(pk=lead["id"]).exists()
        assert not Note.objects.filter(lead_id=lead["id"]).exists()
        text = stored_text()
        for personal in PERSONAL_STRINGS:
            assert personal not in text, personal
        # The pending deliveries go out afterwards, and carry the erased body only.
        sent_before = len(receiver.requests)
        webhook_services.deliver_due(now=timezone.now() + timedelta(days=1))
        after = [r.body.decode() for r in receiver.requests[sent_before:]]
    assert after, "the pending deliveries were retried"
    assert not any(personal in body for body in after for personal in PERSONAL_STRINGS)
    # Ids, types and timestamps stay; the lead's events say they were erased.
    events = list(Event.objects.filter(lead_id=lead["id"]).order_by("id"))
    assert [e.type for e in events][:2] == ["lead.created", "lead.updated"]
    assert all(e.data["erased"] is True for e in events)
    created = events[0].data["lead"]
    assert created["id"] == lead["id"] and created["email"] is None and created["first_name"] is None
    assert created["status"] == "new" and created["created_at"] == lead["created_at"]
    assert events[1].data["changes"]["status"] == {"before": "new", "after": "contacted"}
    assert events[1].data["changes"]["city"] == {"before": None, "after": None}
    # Receivers are told to delete their copy: a lead.deleted marked erased, without personal data.
    assert events[-1].type == "lead.deleted"
    assert events[-1].data == {"lead": {"id": lead["id"], "email": None, "external_id": None}, "erased": True}
    # Other leads are untouched.
    assert Event.objects.get(lead_id=other["id"], type="lead.created").data["lead"]["city"] == "Arlington"
    assert Lead.objects.filter(pk=other["id"]).exists()


def test_an_erased_lead_leaves_nothing_in_a_stored_csv_import_report(api, account, owner, settings, tmp_path):
    from django.core.files.storage import default_storage

    from accounts.actor import Actor
    from accounts.scopes import ROLE_SCOPES
    from leads import imports

    settings.MEDIA_ROOT = tmp_path / "media"
    actor = Actor(user=owner, account=account, role=Role.OWNER, scopes=ROLE_SCOPES[Role.OWNER], via="ui")
    csv = imports.csv_parse(
        b"email,first name,last name,company,phone,external id\n"
        b"Ada.Lovelace@Example.com,Ada,Lovelace,Analytical Engines,+442071234567,crm-1815\n"
        b"ada.lovelace@example.com,Ada,Lovelace,Again,,\n"  # meets the first: duplicate_in_batch
        b"grace@example.com,Grace,Hopper,Navy,,\n"
    )
    import_id = imports.import_upload_store(account=account, raw=b"unused", filename="people.csv")
    mapping = ["email", "first_name", "last_name", "company", "phone", "external_id"]
    report = imports.leads_import(account=account, actor=actor, csv_file=csv, mapping=mapping)
    imports.import_report_store(account=account, import_id=import_id, report=report)
    ada = Lead.objects.get(account=account, email=EMAIL)

    erased(api, str(ada.pk))

    with default_storage.open(f"imports/{account.pk}/{import_id}/report.json", "rb") as fh:
        stored = fh.read().decode()
    for personal in [*PERSONAL_STRINGS, "Ada", "grace@example.com", "Hopper"]:
        assert personal not in stored, personal
    shown = imports.import_report_rows(
        account=account, rows=imports.import_report_load(account=account, import_id=import_id).rows
    )
    assert [(r["outcome"], r["label"]) for r in shown] == [
        ("created", None),  # the erased lead: named nowhere
        ("failed", None),
        ("created", "grace@example.com"),  # read from the lead, which still exists
    ]


def test_erase_is_audited_with_the_lead_id_and_hash_only(api, account):
    lead = create(api)

    body = erased(api, lead["id"])

    entry = AuditLogEntry.objects.get(account=account, action="lead.erased")
    assert entry.object_type == "lead" and entry.object_id == lead["id"]
    assert entry.data["email_hash"] == body["email_hash"] and entry.data["suppression_id"] == body["suppression_id"]
    assert entry.actor_api_key is not None
    assert not any(personal in json.dumps(entry.data) for personal in PERSONAL_STRINGS)


def test_erase_adds_a_suppression_with_only_a_keyed_hash_of_the_email(api, account, owner):
    lead = create(api)

    body = erased(api, lead["id"])

    entry = Suppression.objects.get(account=account)
    assert entry.pk == body["suppression_id"] and entry.reason == "erased"
    assert entry.email_hash == email_hash(account=account, email=EMAIL)
    assert EMAIL not in json.dumps(list(Suppression.objects.values()), default=str)
    # Keyed: not the bare SHA-256 anyone could compute from a list of addresses.
    import hashlib

    assert entry.email_hash not in {hashlib.sha256(v.encode()).hexdigest() for v in (EMAIL, f"{account.pk}:{EMAIL}")}


def test_a_lead_without_an_email_is_erased_with_nothing_to_suppress(api, account):
    lead = create(api, {"phone": "+442071234567", "first_name": "Ada"})

    body = erased(api, lead["id"])

    assert body["suppressed"] is False and body["suppression_id"] is None and body["email_hash"] is None
    assert not Lead.objects.filter(pk=lead["id"]).exists()
    assert not Suppression.objects.exists()


def test_erase_forgets_stored_idempotent_responses_holding_the_lead(api, account):
    response = api.post(LEADS, PERSON, format="json", HTTP_IDEMPOTENCY_KEY="create-ada")
    assert response.status_code == 201
    unrelated = api.post(LEADS, {"email": "grace@example.com"}, format="json", HTTP_IDEMPOTENCY_KEY="create-grace")
    assert unrelated.status_code == 201

    erased(api, response.json()["id"])

    assert list(IdempotencyKey.objects.filter(account=account).values_list("key", flat=True)) == ["create-grace"]
    # A retry with the key runs again under today's rules instead of replaying the erased person.
    problem(api.post(LEADS, PERSON, format="json", HTTP_IDEMPOTENCY_KEY="create-ada"), 409, "suppressed")


def test_erase_clears_the_leads_name_from_the_admin_history(api, account, owner):
    lead = create(api)
    content_type = ContentType.objects.get_for_model(Lead)
    LogEntry.objects.log_actions(
        owner.pk, [Lead.objects.get(pk=lead["id"])], CHANGE, change_message="[]", single_object=True
    )
    assert LogEntry.objects.get(content_type=content_type, object_id=lead["id"]).object_repr == EMAIL

    erased(api, lead["id"])

    assert LogEntry.objects.get(content_type=content_type, object_id=lead["id"]).object_repr == "[erased]"


def test_erase_with_an_idempotency_key_replays_the_first_response_on_retry(api, account):
    lead = create(api)

    first = erase(api, lead["id"], HTTP_IDEMPOTENCY_KEY="erase-ada")
    again = erase(api, lead["id"], HTTP_IDEMPOTENCY_KEY="erase-ada")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert AuditLogEntry.objects.filter(action="lead.erased").count() == 1
    assert Event.objects.filter(lead_id=lead["id"], type="lead.deleted").count() == 1
    # Without the key the lead is simply gone.
    problem(erase(api, lead["id"]), 404, "not_found")


def test_erase_refuses_a_body_with_fields(api):
    lead = create(api)

    problem(api.post(f"{LEADS}/{lead['id']}/erase", {"suppress": False}, format="json"), 400, "unknown_field")
    for not_an_object in ("[]", "null", '"x"'):
        response = api.post(f"{LEADS}/{lead['id']}/erase", not_an_object, content_type="application/json")
        problem(response, 400, "validation_error")

    assert Lead.objects.filter(pk=lead["id"]).exists()


def test_erase_of_an_email_already_suppressed_by_hand_keeps_that_entry(api, account):
    lead = create(api)
    manual = api.post(SUPPRESSIONS, {"email": EMAIL}, format="json").json()

    body = erased(api, lead["id"])

    assert body["suppression_id"] == manual["id"]
    assert Suppression.objects.filter(account=account).count() == 1


# --- every create path refuses a suppressed email -------------------------------------------------


@pytest.fixture
def suppressed_ada(api):
    erased(api, create(api)["id"])


@pytest.mark.parametrize("on_duplicate", ["error", "update", "skip"])
@pytest.mark.parametrize("variant", [EMAIL, "ADA.LOVELACE@EXAMPLE.COM", "  Ada.Lovelace@example.com\t"])
def test_single_create_of_a_suppressed_email_is_409_suppressed(api, suppressed_ada, on_duplicate, variant):
    response = api.post(f"{LEADS}?on_duplicate={on_duplicate}", {"email": variant}, format="json")

    problem(response, 409, "suppressed")
    assert not Lead.objects.filter(email=EMAIL).exists()


@pytest.mark.parametrize("on_duplicate", ["error", "update", "skip"])
def test_batch_create_fails_only_the_suppressed_item(api, suppressed_ada, on_duplicate):
    items = [{"email": "grace@example.com"}, {"email": " ADA.lovelace@example.com"}, {"phone": "+14155550100"}]

    response = api.post(f"{LEADS}/batch?on_duplicate={on_duplicate}", {"leads": items}, format="json")

    assert response.status_code == 207, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 409, 201]
    assert results[1]["error"]["code"] == "suppressed"
    assert response.json()["summary"] == {"succeeded": 2, "failed": 1}
    assert not Lead.objects.filter(email=EMAIL).exists()


def test_batch_dry_run_reports_the_suppressed_item(api, suppressed_ada):
    response = api.post(f"{LEADS}/batch?dry_run=true", {"leads": [{"email": EMAIL}]}, format="json")

    assert response.json()["results"][0]["error"]["code"] == "suppressed"


def test_the_create_service_every_front_door_shares_refuses_it(account, suppressed_ada):
    # The UI, CSV import (through batch) and the MCP create_lead tool all call these services.
    with pytest.raises(Suppressed):
        services.lead_create(account=account, actor=None, data={"email": EMAIL})


def test_a_lead_may_not_change_its_email_to_a_suppressed_one(api, suppressed_ada):
    lead = create(api, {"email": "grace@example.com"})

    problem(api.patch(f"{LEADS}/{lead['id']}", {"email": "Ada.Lovelace@example.com"}, format="json"), 409, "suppressed")
    batch = api.put(
        f"{LEADS}/batch", {"leads": [{"id": lead["id"], "email": EMAIL}, {"id": lead["id"]}]}, format="json"
    )
    assert batch.json()["results"][0]["error"]["code"] == "suppressed"

    assert Lead.objects.get(pk=lead["id"]).email == "grace@example.com"


def test_a_lead_that_already_has_a_suppressed_email_can_still_be_updated(api, account):
    lead = create(api, {"email": EMAIL})
    assert api.post(SUPPRESSIONS, {"email": EMAIL}, format="json").status_code == 201

    response = api.patch(f"{LEADS}/{lead['id']}", {"email": EMAIL, "city": "London"}, format="json")

    assert response.status_code == 200 and response.json()["city"] == "London"


def test_lifting_the_suppression_allows_the_email_again_and_is_audited(api, account):
    body = erased(api, create(api)["id"])

    lifted = api.delete(f"{SUPPRESSIONS}/{body['suppression_id']}")

    assert lifted.status_code == 204
    assert not Suppression.objects.exists()
    entry = AuditLogEntry.objects.get(action="suppression.lifted")
    assert entry.object_id == str(body["suppression_id"]) and entry.data["email_hash"] == body["email_hash"]
    assert api.post(LEADS, {"email": EMAIL}, format="json").status_code == 201
    problem(api.delete(f"{SUPPRESSIONS}/{body['suppression_id']}"), 404, "not_found")


def test_the_query_count_of_a_batch_create_does_not_grow_with_the_suppression_list(api, account):
    def batch_queries(tag: str) -> int:
        items = [{"email": f"{tag}{i}@example.com"} for i in range(20)] + [{"email": f"{tag}-blocked@example.com"}]
        with CaptureQueriesContext(connection) as ctx:
            response = api.post(f"{LEADS}/batch", {"leads": items}, format="json")
        assert [r["status"] for r in response.json()["results"]] == [201] * 20 + [409]
        return len(ctx.captured_queries)

    services.suppression_create(account=account, actor=None, email="few-blocked@example.com")
    api.get("/api/v1/me")  # with Redis, the key is cached from here on (accounts/credentials.py)
    few = batch_queries("few")
    for i in range(200):
        services.suppression_create(account=account, actor=None, email=f"someone{i}@example.com")
    services.suppression_create(account=account, actor=None, email="many-blocked@example.com")
    many = batch_queries("many")

    assert few == many


# --- the suppression list API ---------------------------------------------------------------------


def test_suppressing_an_email_by_hand_refuses_it_and_is_idempotent(api, account):
    first = api.post(SUPPRESSIONS, {"email": "Grace@Example.com", "reason": "requested"}, format="json")
    again = api.post(SUPPRESSIONS, {"email": " grace@example.COM"}, format="json")

    assert first.status_code == 201 and again.status_code == 200
    assert first.json() == again.json()
    assert first["Location"].endswith(f"{SUPPRESSIONS}/{first.json()['id']}")
    assert "grace" not in first.content.decode().lower()
    assert AuditLogEntry.objects.filter(action="suppression.created").count() == 1
    problem(api.post(LEADS, {"email": "grace@example.com"}, format="json"), 409, "suppressed")


def test_reason_erased_is_reserved_for_erasures(api):
    problem(
        api.post(SUPPRESSIONS, {"email": "x@example.com", "reason": "erased"}, format="json"), 400, "validation_error"
    )
    problem(api.post(SUPPRESSIONS, {"email": "not an email"}, format="json"), 400, "validation_error")
    problem(api.post(SUPPRESSIONS, {"email": "x@example.com", "hash": "ab"}, format="json"), 400, "unknown_field")


def test_the_list_shows_hashes_never_emails_newest_first_with_a_cursor(api, account):
    emails = [f"person{i}@example.com" for i in range(3)]
    for email in emails:
        api.post(SUPPRESSIONS, {"email": email}, format="json")

    first = api.get(SUPPRESSIONS, {"limit": 2})
    second = api.get(SUPPRESSIONS, {"limit": 2, "cursor": first.json()["next_cursor"]})

    assert first.status_code == second.status_code == 200
    assert first.json()["has_more"] is True and second.json()["has_more"] is False
    rows = first.json()["results"] + second.json()["results"]
    assert [r["email_hash"] for r in rows] == [email_hash(account=account, email=e) for e in reversed(emails)]
    assert set(rows[0]) == {"id", "email_hash", "reason", "created_by", "created_at"}
    assert "person" not in first.content.decode() + second.content.decode()
    one = api.get(f"{SUPPRESSIONS}/{rows[0]['id']}")
    assert one.status_code == 200 and one.json() == rows[0]
    problem(api.get(SUPPRESSIONS, {"email": emails[0]}), 400, "invalid_parameter")
    problem(api.get(SUPPRESSIONS, {"cursor": "tampered"}), 400, "invalid_cursor")


# --- scopes and tenancy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/api/v1/leads/{lead}/erase", None),
        ("get", SUPPRESSIONS, None),
        ("post", SUPPRESSIONS, {"email": "x@example.com"}),
        ("get", SUPPRESSIONS + "/{suppression}", None),
        ("delete", SUPPRESSIONS + "/{suppression}", None),
    ],
)
def test_privacy_operations_need_the_admin_scope(api, account, make_client, method, path, body):
    lead = create(api, {"email": "grace@example.com"})
    suppression = services.suppression_create(account=account, actor=None, email="x@example.com")[0]
    writer = make_client(account, scopes=["leads:read", "leads:write"], role=Role.OWNER)
    member = make_client(account, scopes=["leads:read", "leads:write"], role=Role.MEMBER)
    url = path.format(lead=lead["id"], suppression=suppression.pk)

    for client in (writer, member):
        problem(getattr(client, method)(url, body, format="json"), 403, "insufficient_scope")

    assert Lead.objects.filter(pk=lead["id"]).exists() and Suppression.objects.filter(pk=suppression.pk).exists()


def test_another_accounts_lead_is_404_and_its_suppression_list_is_separate(api, other_api, account, other_account):
    theirs = create(other_api, {"email": EMAIL})
    problem(erase(api, theirs["id"]), 404, "not_found")
    assert Lead.objects.filter(pk=theirs["id"]).exists()

    ours = erased(api, create(api)["id"])

    # The same email is still welcome in the other account, and hashes differently there.
    assert other_api.post(LEADS, {"email": "grace@example.com"}, format="json").status_code == 201
    assert other_api.get(SUPPRESSIONS).json()["results"] == []
    problem(other_api.get(f"{SUPPRESSIONS}/{ours['suppression_id']}"), 404, "not_found")
    problem(other_api.delete(f"{SUPPRESSIONS}/{ours['suppression_id']}"), 404, "not_found")
    assert email_hash(account=other_account, email=EMAIL) != ours["email_hash"]
    assert Suppression.objects.filter(pk=ours["suppression_id"]).exists()
    erased(other_api, theirs["id"])  # now the other account suppresses it too, independently
    assert Suppression.objects.filter(account=other_account).count() == 1


def test_a_suppression_made_under_a_rotated_secret_key_still_matches(api, account, settings):
    erased(api, create(api)["id"])
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-after-rotation-" + "x" * 40

    problem(api.post(LEADS, {"email": EMAIL}, format="json"), 409, "suppressed")


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------


def wait_for_a_blocked_advisory_lock(attempts: int = 300) -> bool:
    """True once some transaction waits for an advisory lock (the create queued behind the erase)."""
    waiting = threading.Event()
    for _ in range(attempts):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if cursor.fetchone()[0]:
                return True
        waiting.wait(0.1)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_create_racing_an_erase_of_the_same_email_waits_and_is_refused(account, make_key):
    raw_key = make_key(account)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    lead_id = client.post(LEADS, {"email": EMAIL}, format="json").json()["id"]
    erase_done = threading.Event()
    release = threading.Event()
    outcome: dict = {}

    def eraser() -> None:
        try:
            with transaction.atomic():
                services.lead_erase(account=account, actor=None, lead_id=lead_id)
                erase_done.set()
                release.wait(timeout=30)  # hold the erase uncommitted while the create starts
        finally:
            connection.close()

    def creator() -> None:
        try:
            other = APIClient()
            other.credentials(HTTP_X_API_KEY=raw_key)
            outcome["response"] = other.post(LEADS, {"email": EMAIL}, format="json")
        finally:
            connection.close()

    first = threading.Thread(target=eraser)
    first.start()
    assert erase_done.wait(timeout=30)
    second = threading.Thread(target=creator)
    second.start()
    assert wait_for_a_blocked_advisory_lock(), "the create should queue behind the erase's identity lock"
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert outcome["response"].status_code == 409, outcome["response"].content
    assert outcome["response"].json()["code"] == "suppressed"
    assert not Lead.objects.filter(account=account, email=EMAIL).exists()
