"""The cursor-paginated lists share one envelope and one Link header (core/api.py: list_params and
page_response): leads, a lead's notes and activity, suppressions and the events feed. Every list answers
`{results, next_cursor, has_more}`, sends `Link: <...>; rel="next"` exactly when there is a next page, keeps
every query parameter in that link (repeated ones too), and refuses unknown parameters and bad limits."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"
SUPPRESSIONS = "/api/v1/suppressions"
EVENTS = "/api/v1/events"


def link_target(response) -> str:
    """The path and query of the response's rel="next" link."""
    link = response["Link"]
    assert link.startswith("<http://testserver/") and link.endswith('>; rel="next"'), link
    url = urlsplit(link[1 : link.index(">")])
    return f"{url.path}?{url.query}"


def walk(api, url: str) -> tuple[list[dict], list[dict]]:
    """Follow the Link headers from `url` to the last page; returns (items, bodies)."""
    items, bodies = [], []
    while True:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        bodies.append(body)
        items.extend(body["results"])
        assert ("Link" in response) == body["has_more"], "a Link header exactly when there is a next page"
        if not body["has_more"]:
            return items, bodies
        assert body["next_cursor"] in parse_qs(urlsplit(link_target(response)).query)["cursor"]
        url = link_target(response)


@pytest.fixture
def lead(account):
    return LeadFactory(account=account)


@pytest.fixture
def paged_lists(api, account, lead):
    """Three items in each list, so limit=2 gives two pages."""
    for n in range(3):
        LeadFactory(account=account, tags=["hot", "eu"], email=f"both{n}@example.com")
        api.post(f"/api/v1/leads/{lead.pk}/notes", {"body": f"note {n}"}, format="json")
        assert api.post(SUPPRESSIONS, {"email": f"gone{n}@example.com"}, format="json").status_code == 201
    LeadFactory(account=account, tags=["hot"], email="onlyhot@example.com")
    for n in range(3):
        assert api.post(LEADS, {"email": f"event{n}@example.com"}, format="json").status_code == 201
    return lead


def url_of(path: str, lead) -> str:
    """A list's URL: paths under the lead ("/notes") are completed with its id."""
    return path if path.startswith("/api/") else f"/api/v1/leads/{lead.pk}{path}"


def list_urls(lead) -> list[str]:
    return [
        f"{LEADS}?limit=2",
        f"/api/v1/leads/{lead.pk}/notes?limit=2",
        f"/api/v1/leads/{lead.pk}/activity?limit=2",
        f"{SUPPRESSIONS}?limit=2",
        f"{EVENTS}?limit=2",
    ]


def test_every_list_answers_the_envelope_and_links_to_its_next_page_until_the_last(api, paged_lists):
    for url in list_urls(paged_lists):
        items, bodies = walk(api, url)
        assert all(list(body) == ["results", "next_cursor", "has_more"] for body in bodies), url
        assert len(bodies) >= 2 and len(items) == len({str(item) for item in items}), url


def test_walking_the_notes_and_suppressions_by_link_returns_every_item_once_in_order(api, paged_lists):
    notes, _ = walk(api, f"/api/v1/leads/{paged_lists.pk}/notes?limit=2")
    assert [n["body"] for n in notes] == ["note 0", "note 1", "note 2"]
    suppressions, _ = walk(api, f"{SUPPRESSIONS}?limit=1")
    assert len(suppressions) == 3 and len({s["id"] for s in suppressions}) == 3


def test_the_next_link_keeps_repeated_parameters_so_the_walk_keeps_its_filter(api, paged_lists):
    first = api.get(f"{LEADS}?tag=hot&tag=eu&limit=2&sort=email")
    query = parse_qs(urlsplit(link_target(first)).query)
    assert query["tag"] == ["hot", "eu"] and query["sort"] == ["email"] and query["limit"] == ["2"]
    leads, _ = walk(api, f"{LEADS}?tag=hot&tag=eu&limit=2&sort=email")
    assert [lead["email"] for lead in leads] == ["both0@example.com", "both1@example.com", "both2@example.com"]


def test_count_true_adds_total_count_after_the_envelope(api, paged_lists):
    body = api.get(f"{LEADS}?tag=hot&limit=1&count=true").json()
    assert list(body) == ["results", "next_cursor", "has_more", "total_count"]
    assert body["total_count"] == 4


def test_the_events_feed_keeps_a_cursor_to_poll_with_on_its_last_page_but_no_link(api, paged_lists):
    response = api.get(f"{EVENTS}?limit=500")
    body = response.json()
    assert body["has_more"] is False and body["next_cursor"] and "Link" not in response
    assert api.get(f"{EVENTS}?cursor={body['next_cursor']}").json()["results"] == []


@pytest.mark.parametrize("path", ["/notes", "/activity", SUPPRESSIONS, EVENTS])
def test_lists_refuse_unknown_parameters_naming_them(api, lead, path):
    response = api.get(f"{url_of(path, lead)}?zeta=1&alpha=2&limit=1")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_parameter"
    assert response.json()["detail"] == "Unknown parameter(s): alpha, zeta."


@pytest.mark.parametrize("path", ["/notes", "/activity", SUPPRESSIONS, EVENTS, LEADS])
@pytest.mark.parametrize("limit", ["0", "501", "ten", "-1"])
def test_lists_refuse_a_limit_outside_1_to_500(api, lead, path, limit):
    response = api.get(f"{url_of(path, lead)}?limit={limit}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_parameter"
    assert response.json()["errors"] == [{"field": "limit", "code": "invalid", "message": "Use 1..500."}]
