"""The lead detail page of the web UI (§4.11): fields, the timeline (the API's lead_activity, newest
first, with an "older" page and an htmx load-more), notes added with the API's note service, and the
lead list's bulk "assign owner" through leads_batch_update."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.actor import Actor
from accounts.models import Role
from accounts.scopes import ROLE_SCOPES
from leads import services
from leads.models import NOTE_MAX_LENGTH, Lead, Note

from .factories import LeadFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def actor(account, owner) -> Actor:
    return Actor(user=owner, account=account, role=Role.OWNER, scopes=ROLE_SCOPES[Role.OWNER], via="ui")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def rep(account):
    return MembershipFactory(account=account, user=UserFactory(email="rep@acme.test"), role=Role.MEMBER).user


@pytest.fixture
def lead(account, actor) -> Lead:
    """Created, then updated (company, tags), then noted: through the services, as the API does."""
    lead = services.lead_create(
        account=account, actor=actor, data={"email": "ada@example.org", "company": "Analytical"}
    ).lead
    services.lead_update(account=account, actor=actor, lead_id=lead.pk, data={"company": "Engines", "tags": ["vip"]})
    services.note_add(account=account, actor=actor, lead_id=lead.pk, body="Called; wants a demo.")
    return lead


def page(client, lead) -> str:
    response = client.get(f"/leads/{lead.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def timeline(html: str) -> str:
    """The timeline section of a page (the fields above it hold "Created" and "Updated" too)."""
    return html[html.index('id="timeline"') :]


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- timeline ---------------------------------------------------------------------------------------


def test_the_detail_page_shows_the_timeline_newest_first_with_before_and_after(owner_client, lead, owner):
    html = timeline(page(owner_client, lead))
    note, updated, created = html.index("Called; wants a demo."), html.index("Updated"), html.index("Created")
    assert note < updated < created
    assert "<del>Analytical</del> → <ins>Engines</ins>" in html
    assert "<del>—</del> → <ins>vip</ins>" in html
    assert f"Note by {owner.email}" in html


def test_an_owner_change_shows_emails_not_ids(owner_client, account, actor, lead, rep):
    services.lead_update(account=account, actor=actor, lead_id=lead.pk, data={"owner": rep.pk})
    assert "<del>—</del> → <ins>rep@acme.test</ins>" in page(owner_client, lead)


def test_a_member_sees_the_timeline_too(client, rep, lead):
    client.force_login(rep)
    assert "Called; wants a demo." in page(client, lead)


@pytest.fixture
def long_history(account, actor, lead) -> list[Note]:
    """25 more notes: the timeline's first page (20) ends before the lead's creation."""
    return [services.note_add(account=account, actor=actor, lead_id=lead.pk, body=f"Note {n:02d}") for n in range(25)]


def test_older_entries_load_with_htmx_after_the_first_page(owner_client, lead, long_history):
    response = owner_client.get(f"/leads/{lead.pk}/")
    html = timeline(response.content.decode())
    assert "Note 24" in html and "Note 05" in html and "Note 04" not in html and "Created" not in html
    cursor = response.context["timeline_next"]
    assert cursor and f'hx-get="/leads/{lead.pk}/activity/?cursor=' in html
    more = owner_client.get(f"/leads/{lead.pk}/activity/", {"cursor": cursor}, headers={"HX-Request": "true"})
    rest = more.content.decode()
    assert more.status_code == 200 and "<html" not in rest
    assert "Note 04" in rest and "Note 00" in rest and "Created" in rest and "Note 05" not in rest
    assert "Older entries" not in rest


def test_without_javascript_the_older_link_opens_a_page(owner_client, lead, long_history):
    cursor = owner_client.get(f"/leads/{lead.pk}/").context["timeline_next"]
    response = owner_client.get(f"/leads/{lead.pk}/activity/", {"cursor": cursor})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html and "Note 00" in html and "Back to the lead" in html


def test_a_tampered_cursor_shows_the_problem_not_a_500(owner_client, lead):
    response = owner_client.get(f"/leads/{lead.pk}/activity/", {"cursor": "garbage"})
    assert response.status_code == 200 and 'role="alert"' in response.content.decode()


def test_another_leads_cursor_is_refused_on_this_lead(owner_client, account, lead, long_history):
    other = LeadFactory(account=account)
    cursor = owner_client.get(f"/leads/{lead.pk}/").context["timeline_next"]
    response = owner_client.get(f"/leads/{other.pk}/activity/", {"cursor": cursor})
    assert "another list" in response.content.decode() and "Note 00" not in response.content.decode()


@pytest.mark.parametrize("suffix", ["", "activity/"])
def test_another_accounts_lead_is_404(owner_client, other_account, suffix):
    foreign = LeadFactory(account=other_account)
    assert owner_client.get(f"/leads/{foreign.pk}/{suffix}").status_code == 404


# --- notes ------------------------------------------------------------------------------------------


def test_add_a_note_and_see_it_first_on_the_timeline(client, rep, lead):
    client.force_login(rep)
    response = client.post(f"/leads/{lead.pk}/notes/", {"body": "  Sent the pricing.  "})
    assert response.status_code == 302 and response["Location"] == f"/leads/{lead.pk}/#timeline"
    note = Note.objects.filter(lead=lead).order_by("-id").first()
    assert (note.body, note.author_id) == ("Sent the pricing.", rep.pk)
    html = page(client, lead)
    assert html.index("Sent the pricing.") < html.index("Called; wants a demo.")
    assert "Note added." in html


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "This field may not be blank."),
        ("   ", "This field may not be blank."),
        ("x" * (NOTE_MAX_LENGTH + 1), f"Ensure this field has no more than {NOTE_MAX_LENGTH} characters."),
    ],
)
def test_a_bad_note_is_shown_next_to_the_field(owner_client, lead, body, message):
    response = owner_client.post(f"/leads/{lead.pk}/notes/", {"body": body})
    assert response.status_code == 200
    assert response.context["note_form"].errors["body"] == [message]
    html = response.content.decode()
    assert 'id="id_body-error"' in html and 'aria-invalid="true"' in html and message in html
    assert Note.objects.filter(lead=lead).count() == 1


def test_a_note_on_another_accounts_lead_is_404_and_adds_nothing(owner_client, other_account):
    foreign = LeadFactory(account=other_account)
    assert owner_client.post(f"/leads/{foreign.pk}/notes/", {"body": "sneaky"}).status_code == 404
    assert not Note.objects.filter(lead=foreign).exists()


def test_a_note_without_a_csrf_token_is_refused(owner, lead):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(f"/leads/{lead.pk}/notes/", {"body": "forged"}).status_code == 403
    assert not Note.objects.filter(body="forged").exists()


# --- bulk assign ------------------------------------------------------------------------------------


@pytest.fixture
def two_leads(account):
    return [LeadFactory(account=account, email="a@example.org"), LeadFactory(account=account, email="b@example.org")]


def test_the_bulk_bar_offers_the_accounts_members_and_unassigned(owner_client, two_leads, rep, other_account):
    stranger = MembershipFactory(account=other_account, user=UserFactory(email="stranger@globex.test")).user
    html = owner_client.get("/leads/").content.decode()
    assert 'value="assign"' in html and 'value="unassigned"' in html and f'value="{rep.pk}"' in html
    assert stranger.email not in html


def test_bulk_assign_and_unassign_go_through_the_batch_update(owner_client, two_leads, rep, account):
    ids = [str(lead.pk) for lead in two_leads]
    response = owner_client.post("/leads/bulk/", {"action": "assign", "owner": str(rep.pk), "ids": ids}, follow=True)
    assert "Assigned 2 leads." in messages_of(response)
    assert set(Lead.objects.filter(account=account).values_list("owner_id", flat=True)) == {rep.pk}
    changed = page(owner_client, two_leads[0])
    assert "<del>—</del> → <ins>rep@acme.test</ins>" in changed  # the batch wrote lead.updated events
    response = owner_client.post("/leads/bulk/", {"action": "assign", "owner": "unassigned", "ids": ids}, follow=True)
    assert "Unassigned 2 leads." in messages_of(response)
    assert set(Lead.objects.filter(account=account).values_list("owner_id", flat=True)) == {None}


def test_assigning_someone_outside_the_account_fails_per_lead(owner_client, two_leads, other_account):
    stranger = MembershipFactory(account=other_account).user
    ids = [str(two_leads[0].pk)]
    response = owner_client.post(
        "/leads/bulk/", {"action": "assign", "owner": str(stranger.pk), "ids": ids}, follow=True
    )
    assert any(m.startswith("Item 1:") for m in messages_of(response))
    two_leads[0].refresh_from_db()
    assert two_leads[0].owner_id is None


@pytest.mark.parametrize(("value", "message"), [("", "Choose the owner to assign."), ("abc", "Item 1:")])
def test_assign_without_a_valid_owner_says_so(owner_client, two_leads, value, message):
    ids = [str(two_leads[0].pk)]
    response = owner_client.post("/leads/bulk/", {"action": "assign", "owner": value, "ids": ids}, follow=True)
    assert any(m.startswith(message) for m in messages_of(response))
    two_leads[0].refresh_from_db()
    assert two_leads[0].owner_id is None
