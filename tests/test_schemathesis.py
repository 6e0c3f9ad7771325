"""Schema-driven fuzzing with schemathesis against the API's own OpenAPI schema (issue 11, §4, §4.6).

The schema is the one drf-spectacular serves at /api/v1/schema, loaded in-process through the WSGI app
(`config.wsgi.application`); every request goes through the whole Django stack (middleware, DRF,
problem+json handler) with an owner's API key (every scope) of a fresh pro account whose rate limit
is lifted. Every operation is fuzzed with schema-valid and schema-invalid data, and each response must:

- not be a server error (no 5xx);
- have a status code the schema documents for the operation;
- have the documented content type (problem+json for errors);
- have a body that validates against the documented schema.

The leads lifecycle is also driven as a hypothesis rule-based state machine (create -> read -> update
-> list -> delete in random orders), checking the same conformance at every step plus consistency:
a lead reads back what was written, a deleted lead is gone, the list holds exactly the live leads.

CI runs a bounded number of examples (`LEADBASE_FUZZ_EXAMPLES`, default 10 per operation) with a
fixed seed and derandomized generation, so a run is repeatable; docs/security.md ("Fuzzing") gives the
longer run. Nothing leaves the process: webhook URLs resolve to a fixed public address and deliveries
are answered in-process.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from accounts.models import Role
from accounts.scopes import ALL_SCOPES
from accounts.services import api_key_create
from webhooks import http as webhook_http
from webhooks import security as webhook_security

from .factories import AccountFactory, MembershipFactory

pytestmark = pytest.mark.django_db

FUZZ_EXAMPLES = int(os.environ.get("LEADBASE_FUZZ_EXAMPLES", "10"))
FUZZ_SEED = int(os.environ.get("LEADBASE_FUZZ_SEED", "20261126"))
SCHEMA_PATH = "/api/v1/schema"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": FUZZ_SEED,
        "generation": {"max-examples": FUZZ_EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {"stateful": {"enabled": False}},
    }
)


@pytest.fixture(autouse=True)
def offline_webhooks(monkeypatch):
    """Webhook hosts resolve to one fixed public address (no DNS) and deliveries answer 200 in-process."""
    real_resolve = webhook_security.resolve_target

    def resolve(host: str, port: int) -> str:
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return "93.184.216.34"
        return real_resolve(host, port)

    monkeypatch.setattr(webhook_security, "resolve_target", resolve)
    monkeypatch.setattr(webhook_http, "post", lambda *args, **kwargs: webhook_http.PostResult(200, 1, "ok"))


@pytest.fixture
def in_test_transaction():
    """Django closes a connection that is inside a transaction at each request's start and end;
    its test client unhooks that, and so must a WSGI client that runs inside the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_key(db, settings, tmp_path, in_test_transaction) -> str:
    """An owner's key with every scope in a fresh pro account that the rate limiter leaves alone."""
    settings.MEDIA_ROOT = str(tmp_path)
    account = AccountFactory(slug="fuzz", plan="pro", rate_limit_override=10**9)
    owner = MembershipFactory(account=account, role=Role.OWNER).user
    return api_key_create(account=account, created_by=owner, name="fuzz", scopes=sorted(ALL_SCOPES))[1]


def _load_schema() -> schemathesis.BaseSchema:
    """The OpenAPI schema as the running app serves it, through the WSGI app (nothing touches the
    database: drf-spectacular builds it from the code)."""
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=CONFIG)


schema = _load_schema()


@schema.parametrize()
@hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_conforms_to_its_schema(case, fuzz_key):
    case.call_and_validate(headers={"X-API-Key": fuzz_key})


# --- stateful: the leads lifecycle -------------------------------------------------------------

EMAILS = ["ada@example.test", "grace@example.test", "alan@example.test", "edsger@example.test"]
STATUSES = ["new", "contacted", "qualified", "unqualified", "converted", "lost"]
WORDS = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


@st.composite
def emails(draw) -> str:
    """A few addresses, in random case and padding: duplicates are frequent and only normalization tells them apart."""
    email = draw(st.sampled_from(EMAILS))
    upper = draw(st.sets(st.integers(0, len(email) - 1), max_size=3))
    email = "".join(ch.upper() if i in upper else ch for i, ch in enumerate(email))
    return draw(st.sampled_from(["", " "])) + email + draw(st.sampled_from(["", "  "]))


lead_changes = st.fixed_dictionaries(
    {},
    optional={
        "first_name": st.text(alphabet="ABCdef xyz", max_size=20),
        "status": st.sampled_from(STATUSES),
        "tags": st.lists(WORDS, max_size=4),
        "country": st.sampled_from(["de", "US", "Fr"]),
    },
)


class LeadLifecycle(RuleBasedStateMachine):
    """Create, read, update, list and delete leads in any order; the API must agree with a plain dict."""

    client: Any = None  # set by the test: a WSGI client
    key: str = ""  # the fuzz key
    leads = Bundle("leads")

    def __init__(self):
        super().__init__()
        # Leads from earlier runs of this test are still in the database: start from what the API lists.
        self.model: dict[str, dict] = {lead["id"]: lead for lead in self.list_all()}

    def request(self, method: str, path: str, body: dict | None = None):
        response = self.client.open(path, method=method, json=body, headers={"X-API-Key": self.key})
        schema[path_template(path)][method].validate_response(response)
        return response

    def list_all(self) -> list[dict]:
        response = self.request("GET", "/api/v1/leads?limit=500")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["results"]

    def expected(self, lead: dict, data: dict) -> dict:
        lead = dict(lead)
        for name, value in data.items():
            if name == "email":
                lead["email"] = value.strip().lower()
            elif name == "country":
                lead["country"] = value.upper()
            elif name == "tags":
                lead["tags"] = sorted({t.lower() for t in value})
            else:
                lead[name] = value
        return lead

    def check_same(self, got: dict, want: dict) -> None:
        for name in ("email", "first_name", "status", "country"):
            assert got[name] == want[name], (name, got, want)
        assert sorted(got["tags"]) == sorted(want["tags"])

    @rule(target=leads, email=emails(), data=lead_changes)
    def create(self, email, data):
        response = self.request("POST", "/api/v1/leads", {"email": email, **data})
        taken = {lead["email"]: lead_id for lead_id, lead in self.model.items()}
        normalized = email.strip().lower()
        if normalized in taken:
            assert response.status_code == 409, response.get_data(as_text=True)
            assert response.get_json()["existing_id"] == taken[normalized]
            return taken[normalized]
        assert response.status_code == 201, response.get_data(as_text=True)
        body = response.get_json()
        base = {"first_name": "", "status": "new", "country": "", "tags": []}
        self.check_same(body, self.expected(base, {"email": email, **data}))
        assert response.headers["Location"].endswith(f"/api/v1/leads/{body['id']}")
        self.model[body["id"]] = body
        return body["id"]

    @rule(lead_id=leads)
    def read(self, lead_id):
        response = self.request("GET", f"/api/v1/leads/{lead_id}")
        if lead_id not in self.model:
            assert response.status_code == 404
            return
        assert response.status_code == 200, response.get_data(as_text=True)
        self.check_same(response.get_json(), self.model[lead_id])

    @rule(lead_id=leads, data=lead_changes)
    def update(self, lead_id, data):
        response = self.request("PATCH", f"/api/v1/leads/{lead_id}", data)
        if lead_id not in self.model:
            assert response.status_code == 404
            return
        assert response.status_code == 200, response.get_data(as_text=True)
        self.model[lead_id] = self.expected(self.model[lead_id], data)
        self.check_same(response.get_json(), self.model[lead_id])

    @rule(lead_id=consumes(leads))
    def delete(self, lead_id):
        response = self.request("DELETE", f"/api/v1/leads/{lead_id}")
        if lead_id not in self.model:
            assert response.status_code == 404
            return
        assert response.status_code == 204, response.get_data(as_text=True)
        del self.model[lead_id]

    @invariant()
    def the_list_holds_exactly_the_live_leads(self):
        listed = {lead["id"]: lead for lead in self.list_all()}
        assert set(listed) == set(self.model)
        for lead_id, lead in listed.items():
            self.check_same(lead, self.model[lead_id])


def path_template(path: str) -> str:
    path = path.split("?", 1)[0]
    parts = path.split("/")
    if len(parts) == 5 and parts[3] == "leads":
        return "/api/v1/leads/{lead_id}"
    return path


def test_leads_lifecycle_is_consistent_and_conforms_to_the_schema(fuzz_key):
    from werkzeug.test import Client

    from config.wsgi import application

    LeadLifecycle.client, LeadLifecycle.key = Client(application), fuzz_key
    hypothesis.stateful.run_state_machine_as_test(
        LeadLifecycle,
        settings=hypothesis.settings(
            max_examples=FUZZ_EXAMPLES,
            stateful_step_count=15,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        ),
    )
