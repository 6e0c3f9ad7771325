"""The request budget as an API client sees it (§4.7): the rate-limit headers on every response,
errors included; 429 problem+json with Retry-After; one budget per account whatever the key;
failed authentication spent against the client address, never the account; the switch to turn
it all off.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from core import ratelimit
from leads import selectors
from leads.models import Lead

from .factories import AccountFactory, LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"
ACCOUNT = "/api/v1/account"
WINDOW = 600
HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy", "RateLimit")


def rate_headers(response) -> dict[str, str]:
    """The rate-limit headers, checked for consistency with each other; returns them."""
    missing = [name for name in HEADERS if not response.has_header(name)]
    assert not missing, f"{response.status_code} response lacks {missing}"
    values = {name: response[name] for name in HEADERS}
    limit, remaining, reset = (int(values[n]) for n in HEADERS[:3])
    assert 0 <= remaining <= limit
    assert 0 <= reset <= WINDOW
    policy = re.fullmatch(r'"(account|ip)";q=(\d+);w=(\d+)', values["RateLimit-Policy"])
    assert policy, values["RateLimit-Policy"]
    assert (int(policy[2]), int(policy[3])) == (limit, WINDOW)
    assert values["RateLimit"] == f'"{policy[1]}";r={remaining};t={reset}'
    return values


def policy_of(response) -> str:
    return rate_headers(response)["RateLimit-Policy"].split(";")[0].strip('"')


def remaining(response) -> int:
    return int(rate_headers(response)["X-RateLimit-Remaining"])


@pytest.fixture
def free_account():
    return AccountFactory(slug="tiny", plan="free")


def spoil(raw_key: str) -> str:
    """The same key with a wrong secret: its prefix still finds the account's key row."""
    return raw_key[:-4] + ("aaaa" if not raw_key.endswith("aaaa") else "bbbb")


# --- headers on every response ------------------------------------------------------------------


def test_a_200_carries_the_account_budget_headers(api):
    response = api.get(f"{LEADS}?limit=1")
    assert response.status_code == 200
    headers = rate_headers(response)
    assert headers["X-RateLimit-Limit"] == "1000"
    assert headers["X-RateLimit-Remaining"] == "999"
    assert headers["X-RateLimit-Reset"] == str(WINDOW)
    assert headers["RateLimit-Policy"] == f'"account";q=1000;w={WINDOW}'
    assert headers["RateLimit"] == f'"account";r=999;t={WINDOW}'


def test_a_201_carries_the_headers(api):
    response = api.post(LEADS, {"email": "ada@example.com"}, format="json")
    assert response.status_code == 201, response.content
    assert policy_of(response) == "account"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", f"{LEADS}?statuz=new", None, 400),  # unknown filter
        ("post", LEADS, {"email": "not an email"}, 400),  # invalid body
        ("get", f"{LEADS}/{uuid.UUID(int=7)}", None, 404),  # no such lead
        ("delete", LEADS, None, 405),
    ],
)
def test_errors_of_an_authenticated_request_carry_the_account_budget_headers(api, method, path, body, status):
    response = getattr(api, method)(path, body, format="json") if body else getattr(api, method)(path)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert policy_of(response) == "account"
    assert remaining(response) == 999


def test_a_403_for_a_missing_scope_carries_the_account_budget_headers(account, make_client):
    reader = make_client(account, scopes=["leads:read"])
    response = reader.post(LEADS, {"email": "ada@example.com"}, format="json")
    assert response.status_code == 403, response.content
    assert policy_of(response) == "account"


def test_a_401_without_a_key_carries_the_client_address_budget_headers():
    response = APIClient().get(LEADS)
    assert response.status_code == 401
    assert policy_of(response) == "ip"
    assert rate_headers(response)["X-RateLimit-Limit"] == "300"


def test_a_401_for_a_wrong_key_carries_the_client_address_budget_headers(account, make_key):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=spoil(make_key(account)))
    response = client.get(LEADS)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert policy_of(response) == "ip"


def test_a_404_for_an_unknown_api_path_carries_the_headers(api):
    response = api.get("/api/v1/nope")
    assert response.status_code == 404
    # No view ran to authenticate it, so it is counted against the client address.
    assert policy_of(response) == "ip"


def test_a_500_carries_the_headers(api, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the selector broke")

    monkeypatch.setattr(selectors, "lead_list", broken)
    response = api.get(LEADS)
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert policy_of(response) == "account"
    assert remaining(response) == 999


def test_non_api_paths_carry_no_rate_limit_headers(db, client):
    response = client.get("/admin/login/")
    assert not any(response.has_header(name) for name in HEADERS)


# --- 429 ----------------------------------------------------------------------------------------


def test_past_the_budget_the_api_answers_429_rate_limited_with_retry_after(account, api):
    account.rate_limit_override = 2
    account.save()
    first, second, refused = (api.get(f"{LEADS}?limit=1") for _ in range(3))
    assert (first.status_code, second.status_code) == (200, 200)
    assert (remaining(first), remaining(second)) == (1, 0)
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    body = refused.json()
    assert (body["code"], body["status"]) == ("rate_limited", 429)
    headers = rate_headers(refused)
    assert (headers["X-RateLimit-Limit"], headers["X-RateLimit-Remaining"]) == ("2", "0")
    assert 1 <= int(refused["Retry-After"]) <= WINDOW
    assert refused["Retry-After"] == headers["X-RateLimit-Reset"]


def test_a_refused_request_does_not_run_the_view(account, api):
    account.rate_limit_override = 1
    account.save()
    assert api.get(f"{LEADS}?limit=1").status_code == 200
    response = api.post(LEADS, {"email": "late@example.com"}, format="json")
    assert response.status_code == 429
    assert not Lead.objects.filter(account=account).exists()


# --- one budget per account ---------------------------------------------------------------------


def test_remaining_counts_down_across_requests_of_one_account_with_two_different_keys(account, make_client):
    first_key, second_key = make_client(account), make_client(account)
    responses = [client.get(f"{LEADS}?limit=1") for client in (first_key, second_key, first_key, second_key)]
    assert [remaining(r) for r in responses] == [999, 998, 997, 996]


def test_accounts_have_separate_budgets(account, api, other_api):
    api.get(LEADS)
    api.get(LEADS)
    assert remaining(other_api.get(LEADS)) == 999
    assert remaining(api.get(LEADS)) == 997


def test_failed_authentication_does_not_spend_the_account_budget(free_account, make_key):
    raw_key = make_key(free_account)
    revoked_raw = make_key(free_account)
    ApiKey.objects.filter(prefix=revoked_raw[:11]).update(revoked_at=timezone.now())
    attempts = [APIClient() for _ in range(3)]
    attempts[0].credentials(HTTP_X_API_KEY=spoil(raw_key))
    attempts[1].credentials(HTTP_X_API_KEY=revoked_raw)
    attempts[2].credentials(HTTP_AUTHORIZATION=f"Bearer {spoil(raw_key)}")
    for client in attempts:
        for _ in range(5):
            response = client.get(LEADS)
            assert response.status_code == 401
            assert policy_of(response) == "ip"
    valid = APIClient()
    valid.credentials(HTTP_X_API_KEY=raw_key)
    assert remaining(valid.get(LEADS)) == 99


# --- unauthenticated requests: per client address -----------------------------------------------


@pytest.fixture
def anon_budget_of_three(settings):
    settings.LEADBASE_ANON_RATE_LIMIT = 3
    ratelimit.reset_limiter()


def test_unauthenticated_requests_are_limited_per_client_address(anon_budget_of_three):
    stranger = APIClient(REMOTE_ADDR="203.0.113.9")
    statuses = [stranger.get(LEADS).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    refused = stranger.get(LEADS)
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert rate_headers(refused)["RateLimit-Policy"] == f'"ip";q=3;w={WINDOW}'
    # Another address has its own budget.
    assert APIClient(REMOTE_ADDR="203.0.113.10").get(LEADS).status_code == 401


def test_wrong_keys_and_unknown_paths_spend_the_client_address_budget(anon_budget_of_three, account, make_key):
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    client.credentials(HTTP_X_API_KEY=spoil(make_key(account)))
    assert [client.get(LEADS).status_code for _ in range(3)] == [401, 401, 401]
    assert client.get(LEADS).status_code == 429
    unknown = APIClient(REMOTE_ADDR="203.0.113.9").get("/api/v1/nope")
    assert (unknown.status_code, unknown.json()["code"]) == (429, "rate_limited")
    assert int(unknown["Retry-After"]) >= 1


def test_a_valid_key_is_served_from_an_address_whose_anonymous_budget_is_spent(anon_budget_of_three, account, make_key):
    raw_key = make_key(account)
    stranger = APIClient(REMOTE_ADDR="203.0.113.9")
    for _ in range(4):
        stranger.get(LEADS)
    colleague = APIClient(REMOTE_ADDR="203.0.113.9")
    colleague.credentials(HTTP_X_API_KEY=raw_key)
    response = colleague.get(LEADS)
    assert response.status_code == 200
    assert policy_of(response) == "account"


# --- /account reports the budget ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "override", "budget"), [("free", None, 100), ("pro", None, 1000), ("free", 250, 250), ("pro", 5, 5)]
)
def test_get_account_reports_the_request_budget_the_limiter_enforces(make_client, plan, override, budget):
    account = AccountFactory(plan=plan, rate_limit_override=override)
    response = make_client(account, scopes=["leads:read"]).get(ACCOUNT)
    assert response.status_code == 200
    assert response.json()["request_budget"] == budget
    assert response.json()["rate_limit_window_seconds"] == WINDOW
    assert rate_headers(response)["X-RateLimit-Limit"] == str(budget)


def test_get_account_reports_lead_usage_beside_the_budget(free_account, make_client):
    LeadFactory.create_batch(3, account=free_account)
    body = make_client(free_account, scopes=["leads:read"]).get(ACCOUNT).json()
    assert (body["request_budget"], body["lead_limit"], body["lead_count"]) == (100, 100, 3)


# --- switched off -------------------------------------------------------------------------------


def test_with_rate_limiting_disabled_there_are_no_headers_and_no_429(settings, account, api):
    settings.LEADBASE_RATE_LIMIT_ENABLED = False
    settings.LEADBASE_ANON_RATE_LIMIT = 1
    ratelimit.reset_limiter()
    account.rate_limit_override = 1
    account.save()
    responses = [api.get(f"{LEADS}?limit=1") for _ in range(3)]
    responses += [APIClient().get(LEADS) for _ in range(3)]
    responses.append(api.get("/api/v1/nope"))
    assert [r.status_code for r in responses] == [200, 200, 200, 401, 401, 401, 404]
    for response in responses:
        assert not any(response.has_header(name) for name in HEADERS)
