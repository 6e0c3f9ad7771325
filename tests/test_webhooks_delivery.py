"""Signed webhook deliveries to a real HTTP receiver on 127.0.0.1 (§4.10, issue 6).

Every lead change reaches the subscriber as a POST signed the way docs/webhooks.md tells a
receiver to check it (the docs' own `verify` is what runs here); failures are retried from the
outbox with exponential backoff, logged per attempt, given up after the retry window, and a
subscription failing for days is switched off. Time is driven through `deliver_due(now=...)`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from scoring.models import ScoringRule
from webhooks import services
from webhooks.models import DeliveryStatus, Event, WebhookDelivery, WebhookSubscription

from .webhook_receiver import DOCS, Receiver, Reply, documented_verify

pytestmark = pytest.mark.django_db

WEBHOOKS = "/api/v1/webhooks"
LEADS = "/api/v1/leads"
verify = documented_verify()


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver lives on 127.0.0.1
    settings.LEADBASE_WEBHOOK_BACKOFF_BASE = 10
    settings.LEADBASE_WEBHOOK_RETRY_HOURS = 72
    settings.LEADBASE_WEBHOOK_DISABLE_AFTER_DAYS = 3
    return settings


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """`with committed(): ...` runs the after-commit hooks (the delivery kick) when the block ends,
    as a real commit would; the Celery task runs eagerly in tests."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def subscribe(api, url: str, event_types: list[str] | None = None) -> dict:
    response = api.post(WEBHOOKS, {"url": url, "event_types": event_types or []}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def create_lead(api, **fields) -> dict:
    response = api.post(LEADS, {"email": "ada@example.com", "first_name": "Ada", **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def feed(api, **params) -> list[dict]:
    response = api.get("/api/v1/events", {"limit": 500, **params})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def deliveries(api, webhook_id) -> list[dict]:
    response = api.get(f"{WEBHOOKS}/{webhook_id}/deliveries")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def v1_signatures(header: str) -> list[str]:
    return [part.split("=", 1)[1] for part in header.split(",") if part.startswith("v1=")]


def hmac_hex(secret: str, header: str, body: bytes) -> str:
    timestamp = header.split(",")[0].removeprefix("t=")
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def only_delivery() -> WebhookDelivery:
    (delivery,) = WebhookDelivery.objects.all()
    return delivery


def assert_signed_delivery_of(request, event: dict, secret: str) -> None:
    """The request is the documented POST for `event`, and the documented check accepts it."""
    assert request.method == "POST"
    assert request.path == "/hooks/leadbase"
    assert request.headers["Content-Type"] == "application/json"
    assert request.event == event["type"]
    assert WebhookDelivery.objects.filter(pk=request.delivery, event_id=int(event["id"])).exists()
    assert request.json() == event
    assert verify(secret, request.body, request.signature) is True


# --- signed deliveries for every lead change -------------------------------------------------


def test_creating_a_lead_posts_a_signed_lead_created_that_the_documented_verify_accepts(api, receiver, committed):
    hook = subscribe(api, receiver.url)

    with committed():
        lead = create_lead(api)

    (request,) = receiver.wait_for(1)
    (event,) = feed(api, type="lead.created")
    assert_signed_delivery_of(request, event, hook["secret"])
    assert event["data"]["lead"]["id"] == lead["id"]
    assert event["data"]["lead"]["email"] == "ada@example.com"
    assert only_delivery().status == DeliveryStatus.SUCCEEDED


def test_the_documented_receiver_check_is_at_most_15_lines_of_code():
    block = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)[0]
    assert len([line for line in block.splitlines() if line.strip()]) <= 15


def test_the_documented_verify_refuses_a_wrong_secret_a_changed_body_and_an_old_timestamp(api, receiver, committed):
    hook = subscribe(api, receiver.url)
    with committed():
        create_lead(api)
    (request,) = receiver.wait_for(1)

    assert verify(hook["secret"], request.body, request.signature) is True
    assert verify(hook["secret"] + "x", request.body, request.signature) is False
    assert verify(hook["secret"], request.body.replace(b"ada@", b"eve@"), request.signature) is False
    assert verify(hook["secret"], request.body, request.signature, tolerance=-1) is False


def test_updating_a_lead_posts_lead_updated_with_each_changed_field_before_and_after(api, receiver, committed):
    lead = create_lead(api, city="Paris")
    hook = subscribe(api, receiver.url, ["lead.updated"])

    with committed():
        response = api.patch(f"{LEADS}/{lead['id']}", {"status": "contacted", "city": "Lyon"}, format="json")
    assert response.status_code == 200, response.content

    (request,) = receiver.wait_for(1)
    (event,) = feed(api, type="lead.updated")
    assert_signed_delivery_of(request, event, hook["secret"])
    assert event["data"]["changes"] == {
        "status": {"before": "new", "after": "contacted"},
        "city": {"before": "Paris", "after": "Lyon"},
    }
    assert event["data"]["lead"]["status"] == "contacted"


def test_deleting_a_lead_posts_lead_deleted_naming_the_lead(api, receiver, committed):
    lead = create_lead(api)
    hook = subscribe(api, receiver.url, ["lead.deleted"])

    with committed():
        assert api.delete(f"{LEADS}/{lead['id']}").status_code == 204

    (request,) = receiver.wait_for(1)
    (event,) = feed(api, type="lead.deleted")
    assert_signed_delivery_of(request, event, hook["secret"])
    assert event["data"]["lead"]["id"] == lead["id"]
    assert event["data"]["lead"]["email"] == "ada@example.com"


def test_rescoring_a_lead_after_a_new_rule_posts_lead_scored_with_the_old_and_new_score(
    api, account, receiver, committed
):
    lead = create_lead(api, job_title="VP Sales")
    ScoringRule.objects.create(
        account=account, name="VP", field="job_title", operator="contains", value="VP", points=40
    )
    hook = subscribe(api, receiver.url, ["lead.scored"])

    with committed():
        response = api.post(f"{LEADS}/{lead['id']}/score")
    assert response.status_code == 200, response.content
    assert response.json()["score"] == 40

    (request,) = receiver.wait_for(1)
    (event,) = feed(api, type="lead.scored")
    assert_signed_delivery_of(request, event, hook["secret"])
    assert event["data"]["lead_id"] == lead["id"]
    assert (event["data"]["previous_score"], event["data"]["score"]) == (0, 40)


def test_an_update_that_changes_the_score_posts_lead_updated_and_lead_scored(api, account, receiver, committed):
    ScoringRule.objects.create(
        account=account, name="VP", field="job_title", operator="contains", value="VP", points=40
    )
    lead = create_lead(api, job_title="Engineer")
    hook = subscribe(api, receiver.url)

    with committed():
        response = api.patch(f"{LEADS}/{lead['id']}", {"job_title": "VP Engineering"}, format="json")
    assert response.status_code == 200, response.content

    requests = receiver.wait_for(2)
    assert sorted(r.event for r in requests) == ["lead.scored", "lead.updated"]
    events = {e["type"]: e for e in feed(api, type="lead.updated,lead.scored")}
    for request in requests:
        assert_signed_delivery_of(request, events[request.event], hook["secret"])
    assert events["lead.scored"]["data"]["score"] == 40
    assert events["lead.updated"]["data"]["changes"]["job_title"] == {"before": "Engineer", "after": "VP Engineering"}


def test_a_subscription_only_receives_the_event_types_it_asked_for(api, receiver, committed):
    subscribe(api, receiver.url, ["lead.deleted"])

    with committed():
        lead = create_lead(api)
        api.patch(f"{LEADS}/{lead['id']}", {"city": "Rome"}, format="json")
        api.delete(f"{LEADS}/{lead['id']}")

    assert [r.event for r in receiver.wait_for(1)] == ["lead.deleted"]
    assert WebhookDelivery.objects.count() == 1


def test_each_subscription_gets_its_own_delivery_signed_with_its_own_secret(api, committed):
    with Receiver() as first, Receiver() as second:
        hooks = [subscribe(api, first.url), subscribe(api, second.url)]

        with committed():
            create_lead(api)

        (a,), (b,) = first.wait_for(1), second.wait_for(1)
    assert a.body == b.body
    assert a.delivery != b.delivery
    assert verify(hooks[0]["secret"], a.body, a.signature) and verify(hooks[1]["secret"], b.body, b.signature)
    assert not verify(hooks[0]["secret"], b.body, b.signature)


# --- retries, backoff and the attempt log ----------------------------------------------------


def test_a_receiver_answering_500_twice_then_200_gets_the_event_three_times_with_growing_backoff(
    api, receiver, committed
):
    receiver.respond(500, 500, 200)
    hook = subscribe(api, receiver.url)
    with committed():
        create_lead(api)
    delivery = only_delivery()
    gaps = []

    for expected_attempts in (2, 3):
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.PENDING
        gaps.append((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds())
        assert services.deliver_due(now=delivery.next_attempt_at - timedelta(seconds=1)) == 0  # not due yet
        assert services.deliver_due(now=delivery.next_attempt_at) == 1
        assert len(receiver.wait_for(expected_attempts)) == expected_attempts

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 3 and delivery.next_attempt_at is None
    assert 8 <= gaps[0] <= 12 and 16 <= gaps[1] <= 24  # 10 s then 20 s, +-20% jitter
    requests = receiver.requests
    assert len(requests) == 3
    assert len({r.body for r in requests}) == 1 and len({r.delivery for r in requests}) == 1
    assert services.deliver_due(now=timezone.now() + timedelta(days=1)) == 0  # nothing left to send

    (logged,) = deliveries(api, hook["id"])
    assert logged["id"] == str(delivery.pk)
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("succeeded", 3, 200)
    assert [a["status_code"] for a in logged["attempt_log"]] == [500, 500, 200]
    assert [a["response_snippet"] for a in logged["attempt_log"]] == ["status 500", "status 500", "status 200"]
    assert all(isinstance(a["duration_ms"], int) and a["duration_ms"] >= 0 for a in logged["attempt_log"])
    assert all(a["error"] == "" for a in logged["attempt_log"])


def test_backoff_doubles_per_attempt_and_is_capped_at_six_hours():
    for attempts, base in [(1, 10), (2, 20), (3, 40), (4, 80), (12, 20480), (13, 6 * 3600), (40, 6 * 3600)]:
        delays = [services.backoff_seconds(attempts) for _ in range(50)]
        assert all(0.8 * base <= d <= min(1.2 * base, 6 * 3600) for d in delays), (attempts, min(delays), max(delays))
        assert len(set(delays)) > 1  # jittered, so failing deliveries do not retry in lockstep


def test_the_attempt_log_keeps_only_the_first_500_characters_of_a_long_response(api, receiver, committed):
    receiver.respond(Reply(status=503, body=b"x" * 2000))
    hook = subscribe(api, receiver.url)

    with committed():
        create_lead(api)

    (logged,) = deliveries(api, hook["id"])
    (attempt,) = logged["attempt_log"]
    assert attempt["status_code"] == 503
    assert attempt["response_snippet"] == "x" * 500


def test_redeliver_sends_the_delivery_again_and_adds_an_attempt_to_its_log(api, receiver, committed):
    hook = subscribe(api, receiver.url)
    with committed():
        create_lead(api)
    delivery = only_delivery()

    response = api.post(f"{WEBHOOKS}/{hook['id']}/deliveries/{delivery.pk}/redeliver")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["attempts"]) == ("succeeded", 2)
    assert [a["status_code"] for a in body["attempt_log"]] == [200, 200]
    first, second = receiver.wait_for(2)
    assert first.body == second.body and first.delivery == second.delivery == str(delivery.pk)
    assert verify(hook["secret"], second.body, second.signature)


def test_redeliver_of_a_failed_delivery_sends_it_and_can_succeed(api, receiver, committed, settings):
    receiver.respond(500)
    hook = subscribe(api, receiver.url)
    with committed():
        create_lead(api)
    WebhookDelivery.objects.update(status=DeliveryStatus.FAILED, next_attempt_at=None)

    response = api.post(f"{WEBHOOKS}/{hook['id']}/deliveries/{only_delivery().pk}/redeliver")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["attempts"]) == ("succeeded", 2)
    assert len(receiver.wait_for(2)) == 2


def test_the_test_endpoint_sends_a_signed_webhook_test_event_now(api, receiver):
    hook = subscribe(api, receiver.url)

    response = api.post(f"{WEBHOOKS}/{hook['id']}/test")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["event_type"], body["status"], body["attempts"]) == ("webhook.test", "succeeded", 1)
    assert [a["status_code"] for a in body["attempt_log"]] == [200]
    (request,) = receiver.wait_for(1)
    assert request.event == "webhook.test"
    assert request.delivery == body["id"]
    assert request.json()["data"] == {"webhook": hook["id"]}
    assert verify(hook["secret"], request.body, request.signature)


def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(api, receiver, committed):
    receiver.respond(Reply(status=302, headers={"Location": receiver.url + "/elsewhere"}))
    hook = subscribe(api, receiver.url)

    with committed():
        create_lead(api)

    # The POST is synchronous: a followed redirect would have arrived before it returned.
    assert [r.path for r in receiver.requests] == ["/hooks/leadbase"]
    delivery = only_delivery()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 302)
    assert delivery.next_attempt_at > delivery.last_attempt_at
    (logged,) = deliveries(api, hook["id"])
    assert [a["status_code"] for a in logged["attempt_log"]] == [302]


def test_a_receiver_that_hangs_past_the_timeout_is_cut_off_with_an_error_attempt(api, receiver, settings):
    settings.LEADBASE_WEBHOOK_TIMEOUT = 1
    receiver.respond(Reply(hang=10))
    hook = subscribe(api, receiver.url)

    started = time.monotonic()
    response = api.post(f"{WEBHOOKS}/{hook['id']}/test")
    elapsed = time.monotonic() - started

    assert response.status_code == 200, response.content
    assert elapsed < 3
    (attempt,) = response.json()["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"] == "TimeoutError: no complete answer within 1 s"
    assert 900 <= attempt["duration_ms"] < 3000
    assert response.json()["status"] == "pending"


def test_a_receiver_that_drips_its_answer_byte_by_byte_is_cut_off_at_the_timeout(api, receiver, settings):
    settings.LEADBASE_WEBHOOK_TIMEOUT = 1
    receiver.respond(Reply(drip=0.1))
    hook = subscribe(api, receiver.url)

    started = time.monotonic()
    response = api.post(f"{WEBHOOKS}/{hook['id']}/test")
    elapsed = time.monotonic() - started

    assert response.status_code == 200, response.content
    assert elapsed < 3
    (attempt,) = response.json()["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"] == "TimeoutError: no complete answer within 1 s"
    assert response.json()["status"] == "pending"


def test_an_unreachable_receiver_is_logged_as_an_error_attempt_and_retried(api, receiver, committed):
    hook = subscribe(api, receiver.url)
    receiver.__exit__()  # nothing listens on the port any more

    with committed():
        create_lead(api)

    (logged,) = deliveries(api, hook["id"])
    (attempt,) = logged["attempt_log"]
    assert attempt["status_code"] is None
    assert "Connection" in attempt["error"] or "refused" in attempt["error"]
    assert logged["status"] == "pending" and logged["next_attempt_at"] is not None


def test_a_target_that_turns_private_after_subscribing_is_refused_at_delivery_and_nothing_is_sent(
    api, receiver, committed, settings
):
    hook = subscribe(api, receiver.url)
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False  # as if the name now resolved inside our network

    with committed():
        create_lead(api)

    assert receiver.requests == []
    (logged,) = deliveries(api, hook["id"])
    (attempt,) = logged["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("refused:")
    assert logged["status"] == "pending"


@pytest.fixture
def fake_dns(monkeypatch):
    """`fake_dns["hooks.example.test"] = ["93.184.216.34", "127.0.0.1"]`: the name resolves to each
    address in turn (the last one sticks), as a rebinding attacker's DNS would answer."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        queue = answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_delivery_connects_to_the_checked_address_and_still_names_the_host(api, receiver, fake_dns, committed):
    port = receiver.port
    fake_dns["hooks.example.test"] = ["127.0.0.1"]
    subscribe(api, f"http://hooks.example.test:{port}/hooks/leadbase")

    with committed():
        create_lead(api)

    (request,) = receiver.wait_for(1)
    assert request.headers["Host"] == f"hooks.example.test:{port}"
    assert only_delivery().status == DeliveryStatus.SUCCEEDED


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_delivery(
    api, receiver, fake_dns, committed, settings
):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False
    port = receiver.port
    fake_dns["hooks.example.test"] = ["93.184.216.34", "127.0.0.1"]  # public when saved, loopback later
    hook = subscribe(api, f"http://hooks.example.test:{port}/hooks/leadbase")

    with committed():
        create_lead(api)

    assert receiver.requests == []
    (attempt,) = deliveries(api, hook["id"])[0]["attempt_log"]
    assert attempt["error"].startswith("refused:") and "127.0.0.1" in attempt["error"]


def test_a_url_the_http_client_refuses_is_an_error_attempt_and_does_not_stop_other_deliveries(api, receiver, committed):
    broken = subscribe(api, receiver.url)
    working = subscribe(api, receiver.url)
    # Saved before the API refused such URLs: http.client sends ASCII request lines only.
    WebhookSubscription.objects.filter(pk=broken["id"]).update(url=receiver.url + "/caf\u00e9")
    assert api.post(LEADS, {"email": "ada@example.com"}, format="json").status_code == 201

    assert services.deliver_due() == 2

    (request,) = receiver.wait_for(1)
    assert verify(working["secret"], request.body, request.signature)
    (attempt,) = deliveries(api, broken["id"])[0]["attempt_log"]
    assert attempt["status_code"] is None and attempt["error"]
    assert deliveries(api, working["id"])[0]["status"] == "succeeded"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A test CA, and a server certificate it signed for hooks.example.test."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Leadbase Test CA", ca_key, "Leadbase Test CA", ca_key, ca=True)
    server = certificate("hooks.example.test", server_key, "Leadbase Test CA", ca_key, ca=False)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder


@pytest.fixture
def tls_receiver(certificates, fake_dns, monkeypatch):
    """An https receiver for hooks.example.test (resolving to 127.0.0.1), whose CA the sender trusts."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    real_default_context = ssl.create_default_context

    def trusting_our_ca(*args, **kwargs):
        trusted = real_default_context(*args, **kwargs)
        trusted.load_verify_locations(cafile=str(certificates / "ca.pem"))
        return trusted

    monkeypatch.setattr(ssl, "create_default_context", trusting_our_ca)
    with Receiver(tls=context, host="hooks.example.test") as receiver:
        yield receiver


def test_an_https_delivery_connects_to_the_checked_address_and_verifies_the_certificate_for_the_host(
    api, tls_receiver, fake_dns, committed
):
    fake_dns["hooks.example.test"] = ["127.0.0.1"]
    hook = subscribe(api, tls_receiver.url)

    with committed():
        create_lead(api)

    (request,) = tls_receiver.wait_for(1)
    assert request.headers["Host"] == f"hooks.example.test:{tls_receiver.port}"
    assert verify(hook["secret"], request.body, request.signature)
    assert only_delivery().status == DeliveryStatus.SUCCEEDED


def test_an_https_receiver_whose_certificate_does_not_name_the_host_gets_nothing(
    api, tls_receiver, fake_dns, committed
):
    fake_dns["other.example.test"] = ["127.0.0.1"]  # same server, but the certificate is for hooks.example.test
    hook = subscribe(api, f"https://other.example.test:{tls_receiver.port}/hooks/leadbase")

    with committed():
        create_lead(api)

    assert tls_receiver.requests == []
    (attempt,) = deliveries(api, hook["id"])[0]["attempt_log"]
    assert attempt["status_code"] is None and "CERTIFICATE_VERIFY_FAILED" in attempt["error"]


def test_an_https_receiver_that_drips_its_answer_is_cut_off_at_the_timeout(api, tls_receiver, fake_dns, settings):
    settings.LEADBASE_WEBHOOK_TIMEOUT = 1
    fake_dns["hooks.example.test"] = ["127.0.0.1"]
    tls_receiver.respond(Reply(drip=0.1))
    hook = subscribe(api, tls_receiver.url)

    started = time.monotonic()
    response = api.post(f"{WEBHOOKS}/{hook['id']}/test")

    assert time.monotonic() - started < 3
    (attempt,) = response.json()["attempt_log"]
    assert (attempt["status_code"], attempt["error"]) == (None, "TimeoutError: no complete answer within 1 s")


# --- giving up, disabling ----------------------------------------------------------------------


def test_a_delivery_still_failing_after_the_retry_window_is_marked_failed(api, receiver, committed, settings):
    settings.LEADBASE_WEBHOOK_RETRY_HOURS = 24
    settings.LEADBASE_WEBHOOK_DISABLE_AFTER_DAYS = 30
    receiver.default = 500
    subscribe(api, receiver.url)
    with committed():
        create_lead(api)
    delivery = only_delivery()
    start = delivery.created_at

    WebhookDelivery.objects.update(next_attempt_at=start)
    assert services.deliver_due(now=start + timedelta(hours=23)) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING

    WebhookDelivery.objects.update(next_attempt_at=start)
    assert services.deliver_due(now=start + timedelta(hours=24, minutes=1)) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == (DeliveryStatus.FAILED, 3, None)
    assert services.deliver_due(now=start + timedelta(days=30)) == 0
    assert len(receiver.requests) == 3


def test_a_subscription_failing_for_the_disable_period_is_switched_off_and_a_webhook_disabled_event_written(
    api, receiver, committed, settings
):
    settings.LEADBASE_WEBHOOK_RETRY_HOURS = 96  # the delivery outlives the subscription
    receiver.default = 500
    hook = subscribe(api, receiver.url, ["lead.created"])
    with committed():
        create_lead(api)
    first_failure = only_delivery().last_attempt_at

    WebhookDelivery.objects.update(next_attempt_at=first_failure)
    services.deliver_due(now=first_failure + timedelta(days=2))
    assert WebhookSubscription.objects.get(pk=hook["id"]).active is True

    WebhookDelivery.objects.update(next_attempt_at=first_failure)
    services.deliver_due(now=first_failure + timedelta(days=3, minutes=1))

    sub = WebhookSubscription.objects.get(pk=hook["id"])
    assert sub.active is False
    assert sub.disabled_at == first_failure + timedelta(days=3, minutes=1)
    assert sub.disabled_reason.startswith("Failing since")
    shown = api.get(f"{WEBHOOKS}/{hook['id']}").json()
    assert shown["active"] is False and shown["disabled_at"] is not None and shown["disabled_reason"]
    (disabled,) = feed(api, type="webhook.disabled")
    assert disabled["data"]["webhook"] == hook["id"] and disabled["data"]["url"] == receiver.url
    assert Event.objects.filter(type="webhook.disabled").count() == 1

    sent = len(receiver.requests)
    assert only_delivery().status == DeliveryStatus.PENDING
    WebhookDelivery.objects.update(next_attempt_at=first_failure)
    assert services.deliver_due(now=first_failure + timedelta(days=4)) == 0  # a disabled subscription gets nothing
    assert len(receiver.requests) == sent


def test_the_webhook_disabled_event_is_delivered_to_subscriptions_that_asked_for_it(api, receiver, committed):
    receiver.default = 500
    with Receiver() as watcher:
        watched = subscribe(api, receiver.url, ["lead.created"])
        watching = subscribe(api, watcher.url, ["webhook.disabled"])
        with committed():
            create_lead(api)
        first_failure = WebhookDelivery.objects.get().last_attempt_at
        WebhookDelivery.objects.update(next_attempt_at=first_failure)

        services.deliver_due(now=first_failure + timedelta(days=3, minutes=1))
        services.deliver_due(now=first_failure + timedelta(days=3, minutes=1))

        (request,) = watcher.wait_for(1)
    assert request.event == "webhook.disabled"
    assert request.json()["data"]["webhook"] == watched["id"]
    assert hmac_hex(watching["secret"], request.signature, request.body) in v1_signatures(request.signature)


def test_reactivating_a_disabled_subscription_clears_its_failure_flag_and_delivers_again(api, receiver, committed):
    receiver.respond(500, 500)
    hook = subscribe(api, receiver.url, ["lead.created"])
    with committed():
        create_lead(api)
    first_failure = only_delivery().last_attempt_at
    WebhookDelivery.objects.update(next_attempt_at=first_failure)
    services.deliver_due(now=first_failure + timedelta(days=3, minutes=1))
    assert WebhookSubscription.objects.get(pk=hook["id"]).active is False

    response = api.patch(f"{WEBHOOKS}/{hook['id']}", {"active": True}, format="json")

    assert response.status_code == 200, response.content
    shown = response.json()
    assert (shown["active"], shown["disabled_at"], shown["disabled_reason"], shown["failing_since"]) == (
        True, None, "", None,
    )  # fmt: skip
    with committed():
        create_lead(api, email="grace@example.com")
    assert receiver.wait_for(3)[-1].event == "lead.created"
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 1


def test_a_success_clears_the_failing_since_mark(api, receiver, committed):
    receiver.respond(500)
    hook = subscribe(api, receiver.url)
    with committed():
        create_lead(api)
    assert WebhookSubscription.objects.get(pk=hook["id"]).failing_since is not None

    services.deliver_due(now=only_delivery().next_attempt_at)

    assert WebhookSubscription.objects.get(pk=hook["id"]).failing_since is None
    assert only_delivery().status == DeliveryStatus.SUCCEEDED


# --- secret rotation ---------------------------------------------------------------------------


def test_during_a_rotation_overlap_deliveries_carry_one_signature_per_secret(api, receiver):
    hook = subscribe(api, receiver.url)
    old_secret = hook["secret"]

    rotated = api.post(f"{WEBHOOKS}/{hook['id']}/rotate-secret", {"overlap_hours": 24}, format="json")
    assert rotated.status_code == 200, rotated.content
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    api.post(f"{WEBHOOKS}/{hook['id']}/test")

    (request,) = receiver.wait_for(1)
    signatures = v1_signatures(request.signature)
    assert len(signatures) == 2
    assert hmac_hex(new_secret, request.signature, request.body) == signatures[0]
    assert hmac_hex(old_secret, request.signature, request.body) == signatures[1]
    assert verify(new_secret, request.body, request.signature) and verify(old_secret, request.body, request.signature)


def test_after_the_rotation_overlap_only_the_new_secret_signs(api, receiver, committed):
    hook = subscribe(api, receiver.url)
    old_secret = hook["secret"]
    new_secret = api.post(f"{WEBHOOKS}/{hook['id']}/rotate-secret", {"overlap_hours": 1}, format="json").json()[
        "secret"
    ]
    receiver.respond(500)
    with committed():
        create_lead(api)
    delivery = only_delivery()
    (during,) = receiver.wait_for(1)
    assert len(v1_signatures(during.signature)) == 2

    services.deliver_due(now=delivery.created_at + timedelta(hours=1, minutes=1))

    _, after = receiver.wait_for(2)
    (signature,) = v1_signatures(after.signature)
    assert signature == hmac_hex(new_secret, after.signature, after.body)
    assert verify(new_secret, after.body, after.signature, tolerance=2 * 3600)
    assert not verify(old_secret, after.body, after.signature, tolerance=2 * 3600)


def test_rotating_with_no_overlap_stops_the_old_secret_at_once(api, receiver):
    hook = subscribe(api, receiver.url)
    new_secret = api.post(f"{WEBHOOKS}/{hook['id']}/rotate-secret", {"overlap_hours": 0}, format="json").json()[
        "secret"
    ]

    api.post(f"{WEBHOOKS}/{hook['id']}/test")

    (request,) = receiver.wait_for(1)
    assert len(v1_signatures(request.signature)) == 1
    assert verify(new_secret, request.body, request.signature)
    assert not verify(hook["secret"], request.body, request.signature)


# --- an attempt's bookkeeping: one transaction ------------------------------------------------------


def test_an_attempt_is_logged_together_with_its_delivery_state_or_not_at_all(api, receiver, monkeypatch):
    """The attempt row, the delivery's new state and the subscription's health are one commit: should
    writing any of them fail, none is kept and the delivery stays pending, to go out again."""
    subscribe(api, receiver.url)
    create_lead(api)  # the after-commit kick is not run: the delivery waits in the outbox
    delivery = only_delivery()

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away mid-way")

    monkeypatch.setattr(services, "_track_health", broken)
    with pytest.raises(RuntimeError):
        services.deliver_one(delivery_id=delivery.pk)
    receiver.wait_for(1)  # it was sent ...
    delivery.refresh_from_db()
    assert delivery.attempts == 0 and delivery.status == DeliveryStatus.PENDING  # ... but nothing recorded
    assert not delivery.attempt_log.exists()

    monkeypatch.undo()
    services.deliver_one(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_log.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_an_attempt_commits_once_without_waiting_for_the_wal_flush(api, receiver, monkeypatch):
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(services, "_kick_delivery", lambda: None)  # real commits here: keep them in the outbox
    subscribe(api, receiver.url)
    create_lead(api)
    delivery = only_delivery()
    with CaptureQueriesContext(connection) as ctx:
        services.deliver_one(delivery_id=delivery.pk)
    sql = [q["sql"] for q in ctx.captured_queries]
    first = sql.index("SET LOCAL synchronous_commit TO OFF")
    writes = [s for s in sql[first:] if s.startswith(("INSERT", "UPDATE"))]
    assert writes[0].startswith('INSERT INTO "webhooks_deliveryattempt"'), sql
    assert writes[1].startswith('UPDATE "webhooks_webhookdelivery"'), sql
    with connection.cursor() as cursor:  # SET LOCAL: the session's own setting is untouched after the commit
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED

    # Called inside a transaction of the caller's, the caller's commit keeps its own mode.
    create_lead(api, email="grace@example.com")
    second = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    with CaptureQueriesContext(connection) as ctx, transaction.atomic():
        services.deliver_one(delivery_id=second.pk)
    assert not any("synchronous_commit" in q["sql"] for q in ctx.captured_queries)
