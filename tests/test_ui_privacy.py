"""The privacy pages of the web UI (§4.11, §4.12) through Django's test client: erase a lead after a
confirmation page (the API's `lead_erase`), the suppression list (add, already suppressed, lift, paging)
with no email anywhere in its HTML, the Settings menu showing each role only what it may open, and the
lead list's "Export these leads" link. Members get the 403 page, another account's objects are 404,
and every POST needs its CSRF token."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from accounts.actor import Actor
from accounts.models import AuditLogEntry, Role
from accounts.scopes import ROLE_SCOPES
from leads import services
from leads.models import Lead, Note, Suppression, SuppressionReason
from leads.suppression import email_hash

from .factories import LeadFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

SUPPRESSIONS = "/settings/suppressions/"
EMAIL = "ada.lovelace@example.org"


@pytest.fixture
def admin(account):
    return MembershipFactory(account=account, user=UserFactory(email="admin@acme.test"), role=Role.ADMIN).user


@pytest.fixture
def member(account):
    return MembershipFactory(account=account, user=UserFactory(email="rep@acme.test"), role=Role.MEMBER).user


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def member_client(member):
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def actor(account, admin) -> Actor:
    return Actor(user=admin, account=account, role=Role.ADMIN, scopes=ROLE_SCOPES[Role.ADMIN], via="ui")


@pytest.fixture
def lead(account, actor):
    lead = services.lead_create(
        account=account, actor=actor, data={"email": EMAIL, "first_name": "Ada", "company": "Engines"}
    ).lead
    services.note_add(account=account, actor=actor, lead_id=lead.pk, body="Call back on Monday")
    return lead


def html(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def csrf_token(response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html(response))
    assert match, "the page has no CSRF token field"
    return match.group(1)


def settings_menu(response) -> str:
    match = re.search(r'<details class="menu[^"]*">(.*?)</details>', html(response), re.S)
    assert match, "no Settings menu in the nav"
    return match.group(1)


# --- erase ------------------------------------------------------------------------------------------


def test_the_erase_button_is_on_the_lead_page_for_admins_only(admin_client, member_client, lead):
    path = f"/leads/{lead.pk}/erase/"
    assert path in html(admin_client.get(f"/leads/{lead.pk}/"))
    member_page = html(member_client.get(f"/leads/{lead.pk}/"))
    assert path not in member_page and "Erase personal data" not in member_page


def test_the_confirmation_page_says_what_erase_does(admin_client, lead):
    response = admin_client.get(f"/leads/{lead.pk}/erase/")
    assert response.status_code == 200
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html(response))).split())
    for phrase in (
        "deletes the lead and its notes",
        "strips the personal data from its events",
        "suppresses the email",
        "until an admin lifts the suppression",
        "This cannot be undone.",
    ):
        assert phrase in text, phrase
    assert Lead.objects.filter(pk=lead.pk).exists(), "showing the confirmation erases nothing"


def test_erasing_deletes_the_lead_and_its_notes_suppresses_the_email_and_says_so(admin_client, account, lead):
    response = admin_client.post(f"/leads/{lead.pk}/erase/", follow=True)
    assert response.redirect_chain == [("/leads/", 302)]
    assert not Lead.objects.filter(pk=lead.pk).exists()
    assert not Note.objects.filter(lead_id=lead.pk).exists()
    entry = Suppression.objects.get(account=account)
    assert entry.email_hash == email_hash(account=account, email=EMAIL)
    assert entry.reason == SuppressionReason.ERASED and entry.created_by.email == "admin@acme.test"
    assert AuditLogEntry.objects.filter(account=account, action="lead.erased", object_id=str(lead.pk)).exists()
    (message,) = messages_of(response)
    assert message.startswith("Lead erased") and entry.email_hash[:12] in message
    assert EMAIL not in html(response), "the erased email is nowhere on the next page"


def test_a_lead_without_an_email_is_erased_without_a_suppression(admin_client, account, actor):
    lead = services.lead_create(account=account, actor=actor, data={"phone": "+442071234567"}).lead
    assert "this lead has no email" in html(admin_client.get(f"/leads/{lead.pk}/erase/"))
    response = admin_client.post(f"/leads/{lead.pk}/erase/", follow=True)
    assert not Lead.objects.filter(pk=lead.pk).exists() and not Suppression.objects.exists()
    assert "nothing was suppressed" in messages_of(response)[0]


def test_the_create_form_refuses_an_erased_email_next_to_the_email_field(admin_client, lead):
    admin_client.post(f"/leads/{lead.pk}/erase/")
    response = admin_client.post("/leads/new/", {"email": "  Ada.Lovelace@Example.org", "status": "new"})
    assert response.status_code == 200 and not Lead.objects.exists()
    assert response.context["form"].errors["email"] == [
        "This email is on the account's suppression list; an admin can lift it."
    ]
    assert 'id="id_email-error"' in html(response)


def test_a_member_gets_the_403_page_and_erases_nothing(member_client, lead):
    assert member_client.get(f"/leads/{lead.pk}/erase/").status_code == 403
    response = member_client.post(f"/leads/{lead.pk}/erase/")
    assert response.status_code == 403 and "does not allow" in html(response)
    assert Lead.objects.filter(pk=lead.pk).exists() and not Suppression.objects.exists()


def test_another_accounts_lead_is_404_and_is_not_erased(admin_client, other_account):
    foreign = LeadFactory(account=other_account, email=EMAIL)
    assert admin_client.get(f"/leads/{foreign.pk}/erase/").status_code == 404
    assert admin_client.post(f"/leads/{foreign.pk}/erase/").status_code == 404
    assert Lead.objects.filter(pk=foreign.pk).exists() and not Suppression.objects.exists()


def test_erasing_twice_is_404(admin_client, lead):
    assert admin_client.post(f"/leads/{lead.pk}/erase/").status_code == 302
    assert admin_client.post(f"/leads/{lead.pk}/erase/").status_code == 404


def test_erase_needs_the_csrf_token(admin, lead):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    page = client.get(f"/leads/{lead.pk}/erase/")
    assert client.post(f"/leads/{lead.pk}/erase/").status_code == 403
    assert Lead.objects.filter(pk=lead.pk).exists()
    response = client.post(f"/leads/{lead.pk}/erase/", {"csrfmiddlewaretoken": csrf_token(page)})
    assert response.status_code == 302 and not Lead.objects.filter(pk=lead.pk).exists()


# --- the suppression list ---------------------------------------------------------------------------


def test_adding_an_email_suppresses_it_and_the_list_shows_only_its_hash(admin_client, account):
    response = admin_client.post(SUPPRESSIONS, {"email": f" {EMAIL.upper()} ", "reason": "requested"}, follow=True)
    assert response.redirect_chain == [(SUPPRESSIONS, 302)]
    entry = Suppression.objects.get(account=account)
    assert entry.email_hash == email_hash(account=account, email=EMAIL) and entry.reason == "requested"
    assert messages_of(response) == [
        f"Email suppressed (entry {entry.email_hash[:12]}…): it cannot be added as a lead."
    ]
    page = html(response)
    assert entry.email_hash[:12] in page and "admin@acme.test" in page and "Requested" in page
    assert EMAIL not in page.lower() and "ada.lovelace" not in page.lower()
    assert f"{SUPPRESSIONS}{entry.pk}/lift/" in page


def test_adding_an_email_already_suppressed_says_so(admin_client, account):
    admin_client.post(SUPPRESSIONS, {"email": EMAIL, "reason": "requested"}, follow=True)
    response = admin_client.post(SUPPRESSIONS, {"email": EMAIL.upper(), "reason": "other"}, follow=True)
    entry = Suppression.objects.get(account=account)
    assert entry.reason == "requested", "the first entry is kept"
    (message,) = list(response.context["messages"])
    assert message.level_tag == "info" and str(message).startswith("That email is already suppressed")
    assert EMAIL not in html(response)


def test_a_bad_email_is_refused_next_to_the_field_with_the_apis_message(admin_client):
    response = admin_client.post(SUPPRESSIONS, {"email": "not-an-email", "reason": "requested"})
    assert response.status_code == 200 and not Suppression.objects.exists()
    assert response.context["form"].errors["email"] == ["Enter a valid email address."]
    assert 'id="id_email-error"' in html(response)
    # `erased` is set by erasures only, as in the API
    response = admin_client.post(SUPPRESSIONS, {"email": EMAIL, "reason": "erased"})
    assert "reason" in response.context["form"].errors and not Suppression.objects.exists()


def test_lifting_asks_first_then_lets_the_email_be_added_again(admin_client, account):
    admin_client.post(SUPPRESSIONS, {"email": EMAIL, "reason": "requested"}, follow=True)
    entry = Suppression.objects.get(account=account)
    confirm = admin_client.get(f"{SUPPRESSIONS}{entry.pk}/lift/")
    assert confirm.status_code == 200 and "may then be added as a lead again" in html(confirm)
    assert Suppression.objects.filter(pk=entry.pk).exists()
    response = admin_client.post(f"{SUPPRESSIONS}{entry.pk}/lift/", follow=True)
    assert response.redirect_chain == [(SUPPRESSIONS, 302)]
    assert not Suppression.objects.filter(pk=entry.pk).exists()
    assert messages_of(response) == [f"Suppression {entry.email_hash[:12]}… lifted: that email may be added again."]
    assert AuditLogEntry.objects.filter(account=account, action="suppression.lifted").exists()
    assert admin_client.post("/leads/new/", {"email": EMAIL, "status": "new"}).status_code == 302
    assert Lead.objects.filter(account=account, email=EMAIL).exists()


def test_the_list_pages_on_the_apis_cursor(admin_client, account):
    for n in range(53):
        services.suppression_create(account=account, actor=None, email=f"person{n}@example.org")
    first = admin_client.get(SUPPRESSIONS)
    assert len(first.context["page"].items) == 50
    match = re.search(r'href="\?cursor=([^"]+)" rel="next"', html(first))
    assert match and "First page" not in html(first)
    second = admin_client.get(f"{SUPPRESSIONS}?cursor={unescape(match.group(1))}")
    assert len(second.context["page"].items) == 3 and 'rel="next"' not in html(second)
    assert "First page" in html(second)
    seen = {e.pk for e in first.context["page"].items} | {e.pk for e in second.context["page"].items}
    assert seen == set(Suppression.objects.filter(account=account).values_list("pk", flat=True))


def test_the_ui_and_the_api_page_through_one_selector_and_share_its_cursor(admin_client, account, make_client):
    from leads import suppression

    for n in range(53):
        services.suppression_create(account=account, actor=None, email=f"person{n}@example.org")
    api = make_client(account)
    api_page = api.get("/api/v1/suppressions", {"limit": 50}).json()
    ui_page = admin_client.get(SUPPRESSIONS).context["page"]
    assert (
        ui_page.next_cursor
        == api_page["next_cursor"]
        == suppression.suppression_page(account=account, cursor=None, limit=50).next_cursor
    )
    # the API's cursor opens the UI's second page, and the UI's the API's
    ui_second = admin_client.get(f"{SUPPRESSIONS}?cursor={api_page['next_cursor']}").context["page"]
    api_second = api.get("/api/v1/suppressions", {"limit": 50, "cursor": ui_page.next_cursor}).json()
    assert [e.pk for e in ui_second.items] == [r["id"] for r in api_second["results"]]
    assert len(ui_second.items) == 3


def test_a_tampered_cursor_is_explained_on_the_page(admin_client):
    response = admin_client.get(f"{SUPPRESSIONS}?cursor=not-a-cursor")
    assert response.status_code == 200 and response.context["error"].code == "invalid_cursor"
    assert 'role="alert"' in html(response)


def test_a_member_gets_the_403_page_on_suppressions(member_client, account):
    entry, _ = services.suppression_create(account=account, actor=None, email=EMAIL)
    assert member_client.get(SUPPRESSIONS).status_code == 403
    assert member_client.post(SUPPRESSIONS, {"email": "x@example.org", "reason": "requested"}).status_code == 403
    assert member_client.get(f"{SUPPRESSIONS}{entry.pk}/lift/").status_code == 403
    assert member_client.post(f"{SUPPRESSIONS}{entry.pk}/lift/").status_code == 403
    assert list(Suppression.objects.values_list("pk", flat=True)) == [entry.pk]


def test_another_accounts_suppression_is_404(admin_client, other_account):
    foreign, _ = services.suppression_create(account=other_account, actor=None, email=EMAIL)
    assert admin_client.get(f"{SUPPRESSIONS}{foreign.pk}/lift/").status_code == 404
    assert admin_client.post(f"{SUPPRESSIONS}{foreign.pk}/lift/").status_code == 404
    assert Suppression.objects.filter(pk=foreign.pk).exists()
    assert foreign.email_hash[:12] not in html(admin_client.get(SUPPRESSIONS))


def test_suppression_posts_need_the_csrf_token(admin, account):
    entry, _ = services.suppression_create(account=account, actor=None, email=EMAIL)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.post(SUPPRESSIONS, {"email": "new@example.org", "reason": "requested"}).status_code == 403
    assert client.post(f"{SUPPRESSIONS}{entry.pk}/lift/").status_code == 403
    assert list(Suppression.objects.values_list("pk", flat=True)) == [entry.pk]
    token = csrf_token(client.get(SUPPRESSIONS))
    assert client.post(f"{SUPPRESSIONS}{entry.pk}/lift/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert not Suppression.objects.exists()


# --- the nav ----------------------------------------------------------------------------------------

ADMIN_PAGES = {
    "/settings/api-keys/": "API keys",
    "/settings/webhooks/": "Webhooks",
    "/settings/oauth-apps/": "OAuth apps",
    SUPPRESSIONS: "Suppressions",
}
EVERYONES_PAGES = {
    "/settings/scoring-rules/": "Scoring rules",
    "/settings/members/": "Members",
    "/settings/plan/": "Plan",
    "/oauth/authorized-apps/": "Authorised apps",
}


def _menu_links(response) -> dict[str, str]:
    return dict(re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', settings_menu(response)))


def test_the_settings_menu_shows_a_member_only_what_a_member_may_open(member_client):
    links = _menu_links(member_client.get("/leads/"))
    assert links == EVERYONES_PAGES
    for path in links:  # and each of them opens
        assert member_client.get(path).status_code == 200, path


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_the_settings_menu_shows_admins_and_owners_every_settings_page(client, account, role):
    user = MembershipFactory(account=account, user=UserFactory(email=f"{role}@acme.test"), role=role).user
    client.force_login(user)
    links = _menu_links(client.get("/leads/"))
    assert links == {**ADMIN_PAGES, **EVERYONES_PAGES}
    for path in links:
        assert client.get(path).status_code == 200, path


def test_the_main_nav_keeps_leads_import_and_export_outside_the_menu(admin_client):
    response = admin_client.get("/leads/")
    nav = re.search(r'<nav aria-label="Main"[^>]*>(.*?)</nav>', html(response), re.S).group(1)
    outside = re.sub(r"<details.*?</details>", "", nav, flags=re.S)
    assert dict(re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', outside)) == {
        "/leads/": "Leads",
        "/leads/import/": "Import",
        "/exports/new/": "Export",
    }
    assert 'aria-current="page">Leads<' in outside
    assert '<details class="menu">' in nav and "open" not in re.search(r"<details[^>]*>", nav).group(0)


def test_the_menu_marks_the_settings_page_in_use(admin_client):
    response = admin_client.get(SUPPRESSIONS)
    assert '<details class="menu current">' in html(response)
    assert 'aria-current="page">Suppressions<' in settings_menu(response)


# --- the lead list's export link --------------------------------------------------------------------


def _export_link(response) -> dict[str, list[str]]:
    match = re.search(r'<a href="(/exports/new/\?[^"]*)"[^>]*>Export these leads</a>', html(response))
    assert match, "no export link on the lead list"
    return parse_qs(urlsplit(unescape(match.group(1))).query)


def test_the_export_link_carries_the_lists_filters_and_sort_but_not_its_cursor(admin_client, account):
    for n in range(30):
        LeadFactory(account=account, email=f"q{n}@example.org", status="qualified", score=n)
    LeadFactory(account=account, email="other@example.org", status="new")
    first = admin_client.get("/leads/?status=qualified&score__gte=1&tag=&sort=-score&limit=25")
    query = _export_link(first)
    assert query == {"status": ["qualified"], "score__gte": ["1"], "sort": ["-score"], "limit": ["25"]}
    cursor = first.context["page"].next_cursor
    assert cursor, "a second page exists"
    second = admin_client.get(f"/leads/?status=qualified&score__gte=1&sort=-score&limit=25&cursor={cursor}")
    assert len(second.context["page"].items) == 4
    assert _export_link(second) == query, "the link exports every matching lead, not the page"


def test_the_export_link_follows_the_filters_when_htmx_swaps_the_results(admin_client, account):
    LeadFactory(account=account, email="n@example.org", status="new")
    response = admin_client.get("/leads/?status=new&q=example", HTTP_HX_REQUEST="true")
    assert "<html" not in html(response)  # the partial
    assert _export_link(response) == {"status": ["new"], "q": ["example"], "limit": ["25"]}


def test_the_export_page_takes_the_links_filters(admin_client, account):
    LeadFactory(account=account, email="n@example.org", status="new")
    href = re.search(r'href="(/exports/new/\?[^"]*)"', html(admin_client.get("/leads/?status=new&owner=&sort=-score")))
    page = admin_client.get(unescape(href.group(1)))
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["status"] == "new" and form.initial["sort"] == "-score"
