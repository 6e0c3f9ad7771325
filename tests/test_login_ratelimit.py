"""The admin login form is limited with django-ratelimit per client IP and per username (§4.7)."""

import uuid

import pytest
from django.conf import settings

from .factories import UserFactory

LOGIN = "/admin/login/"


def _limit(rate: str) -> int:
    return int(rate.split("/")[0])


def _ip() -> str:
    # Each test uses its own documentation-range address so parallel workers never share a counter.
    suffix = uuid.uuid4().hex
    return f"2001:db8:{suffix[:4]}:{suffix[4:8]}::{suffix[8:12]}"


@pytest.mark.django_db
def test_login_attempts_for_one_username_are_refused_with_429_past_the_limit(client):
    user = UserFactory(email=f"{uuid.uuid4().hex[:10]}@example.com", is_staff=True)
    limit = _limit(settings.LEADBASE_LOGIN_RATE_PER_USERNAME)
    statuses = []
    for _ in range(limit + 1):
        response = client.post(LOGIN, {"username": user.email, "password": "wrong"}, REMOTE_ADDR=_ip())
        statuses.append(response.status_code)
    assert statuses[:limit] == [200] * limit  # the form again, with an error
    assert statuses[limit] == 429
    assert b"Too many attempts" in response.content


@pytest.mark.django_db
def test_login_attempts_from_one_address_are_refused_with_429_past_the_limit(client):
    ip = _ip()
    limit = _limit(settings.LEADBASE_LOGIN_RATE_PER_IP)
    statuses = [
        client.post(
            LOGIN, {"username": f"u{n}-{uuid.uuid4().hex[:6]}@example.com", "password": "x"}, REMOTE_ADDR=ip
        ).status_code
        for n in range(limit + 1)
    ]
    assert statuses[:limit] == [200] * limit
    assert statuses[limit] == 429


@pytest.mark.django_db
def test_a_correct_login_within_the_limit_succeeds(client):
    user = UserFactory(email=f"{uuid.uuid4().hex[:10]}@example.com", is_staff=True, password="right-password-123")
    response = client.post(LOGIN, {"username": user.email, "password": "right-password-123"}, REMOTE_ADDR=_ip())
    assert response.status_code == 302
