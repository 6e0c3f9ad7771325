"""The admin pages of the web UI (§4.11) through Django's test client: webhooks (secret shown once,
SSRF refusals on the form, delivery log, test ping and redeliver against a real receiver), OAuth apps,
members and plan & usage. Each page calls the same service as its API twin, so the API's rules and
messages are what a person sees; members get the 403 page on admin pages, and another account's
objects are 404."""

from __future__ import annotations

import pytest
from django.test import Client
from oauth2_provider.models import get_application_model

from accounts.models import Membership, Role
from accounts.services import oauth_app_create
from core import ratelimit
from webhooks.models import WebhookSubscription
from webhooks.services import subscription_create

from .factories import AccountFactory, LeadFactory, MembershipFactory, UserFactory
from .webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

PUBLIC_URL = "http://93.184.216.34/hooks/leadbase"  # a literal public address: no DNS needed
WEBHOOKS = "/settings/webhooks/"
OAUTH_APPS = "/settings/oauth-apps/"
MEMBERS = "/settings/members/"
PLAN = "/settings/plan/"


@pytest.fixture(autouse=True)
def public_targets_only(settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False
    return settings


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def admin(account):
    return MembershipFactory(account=account, user=UserFactory(email="admin@acme.test"), role=Role.ADMIN).user


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def member(account):
    return MembershipFactory(account=account, user=UserFactory(email="rep@acme.test"), role=Role.MEMBER).user


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


@pytest.fixture
def hook(account):
    return subscription_create(account=account, actor=None, data={"url": PUBLIC_URL, "event_types": ["lead.created"]})


@pytest.fixture
def foreign_hook(other_account):
    return subscription_create(account=other_account, actor=None, data={"url": PUBLIC_URL})


def html(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- who may see what -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [WEBHOOKS, OAUTH_APPS])
def test_a_member_gets_the_403_page_on_admin_pages(member_client, path):
    response = member_client.get(path)
    assert response.status_code == 403 and "does not allow" in html(response)
    assert member_client.post(path, {"name": "x", "url": PUBLIC_URL}).status_code == 403


def test_a_member_gets_the_403_page_on_every_webhook_action(member_client, hook, account):
    for path in ["", "delete/", "rotate-secret/", "test/"]:
        assert member_client.post(f"{WEBHOOKS}{hook.pk}/{path}").status_code == 403, path
    assert WebhookSubscription.objects.filter(pk=hook.pk, secret=hook.secret).exists()


def test_the_nav_shows_admin_pages_to_admins_and_members_and_plan_to_everyone(member_client, admin):
    nav = html(member_client.get("/leads/"))
    assert MEMBERS in nav and PLAN in nav and WEBHOOKS not in nav and OAUTH_APPS not in nav
    member_client.force_login(admin)
    nav = html(member_client.get("/leads/"))
    assert all(path in nav for path in (MEMBERS, PLAN, WEBHOOKS, OAUTH_APPS))


@pytest.mark.parametrize("path", [WEBHOOKS, OAUTH_APPS, MEMBERS, PLAN])
def test_an_anonymous_visitor_is_sent_to_log_in(client, db, path):
    assert client.get(path)["Location"].startswith(f"/login/?next={path}")


def test_posts_without_a_csrf_token_are_refused(owner, hook, account):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    membership = Membership.objects.get(account=account, user=owner)
    for path, data in [
        (WEBHOOKS, {"url": PUBLIC_URL}),
        (f"{WEBHOOKS}{hook.pk}/delete/", {}),
        (f"{WEBHOOKS}{hook.pk}/rotate-secret/", {}),
        (OAUTH_APPS, {"name": "x", "redirect_uris": "https://app.example/cb"}),
        (MEMBERS, {"email": "new@example.org", "role": "member"}),
        (f"{MEMBERS}{membership.pk}/role/", {"role": "member"}),
    ]:
        assert client.post(path, data).status_code == 403, path
    assert WebhookSubscription.objects.filter(account=account).count() == 1
    assert Membership.objects.filter(account=account).count() == 1
    hook.refresh_from_db()
    assert hook.previous_secret == ""


# --- webhooks ---------------------------------------------------------------------------------------


def test_create_a_webhook_shows_its_secret_once(owner_client, account):
    response = owner_client.post(
        WEBHOOKS, {"url": PUBLIC_URL, "description": "CRM", "event_types": ["lead.created", "lead.updated"]}
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    sub = WebhookSubscription.objects.get(account=account)
    assert (sub.url, sub.description, sub.event_types) == (PUBLIC_URL, "CRM", ["lead.created", "lead.updated"])
    assert sub.secret and sub.secret in html(response)
    assert sub.active is False  # the box was not ticked in this form post
    for page in (WEBHOOKS, f"{WEBHOOKS}{sub.pk}/"):
        assert sub.secret not in html(owner_client.get(page))


def test_an_ssrf_target_is_refused_next_to_the_url_field(owner_client, account):
    response = owner_client.post(WEBHOOKS, {"url": "http://169.254.169.254/latest/meta-data", "active": "on"})
    assert response.status_code == 200
    form = response.context["form"]
    assert "non-public address" in form.errors["url"][0]
    assert 'aria-invalid="true"' in html(response) and 'id="id_url-error"' in html(response)
    assert not WebhookSubscription.objects.filter(account=account).exists()


def test_bad_webhook_input_shows_the_apis_messages(owner_client, account):
    response = owner_client.post(WEBHOOKS, {"url": "", "active": "on"})
    assert response.context["form"].errors["url"] == ["This field may not be blank."]
    response = owner_client.post(WEBHOOKS, {"url": PUBLIC_URL, "event_types": ["lead.exploded"]})
    assert response.context["form"].errors["event_types"]
    assert not WebhookSubscription.objects.filter(account=account).exists()


def test_edit_a_webhook_changes_what_changed(owner_client, hook):
    response = owner_client.post(
        f"{WEBHOOKS}{hook.pk}/",
        {"url": PUBLIC_URL, "description": "", "event_types": ["lead.scored"]},
        follow=True,
    )
    assert "Webhook saved." in messages_of(response)
    hook.refresh_from_db()
    assert (hook.event_types, hook.active, hook.url) == (["lead.scored"], False, PUBLIC_URL)


def test_editing_to_a_private_url_is_refused_and_keeps_the_old_one(owner_client, hook):
    data = {"url": "http://10.1.2.3/x", "event_types": ["lead.created"], "active": "on"}
    response = owner_client.post(f"{WEBHOOKS}{hook.pk}/", data)
    assert response.status_code == 200 and "non-public address" in response.context["form"].errors["url"][0]
    hook.refresh_from_db()
    assert hook.url == PUBLIC_URL


def test_delete_a_webhook_after_confirmation(owner_client, hook):
    assert "cannot be undone" in html(owner_client.get(f"{WEBHOOKS}{hook.pk}/delete/"))
    response = owner_client.post(f"{WEBHOOKS}{hook.pk}/delete/")
    assert response["Location"] == WEBHOOKS
    assert not WebhookSubscription.objects.filter(pk=hook.pk).exists()


def test_rotate_the_secret_shows_the_new_one_once_and_keeps_the_old_signing(owner_client, hook):
    old = hook.secret
    response = owner_client.post(f"{WEBHOOKS}{hook.pk}/rotate-secret/", {"overlap_hours": "2"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    hook.refresh_from_db()
    assert hook.secret != old and hook.previous_secret == old and hook.previous_secret_expires_at is not None
    assert hook.secret in html(response)
    assert hook.secret not in html(owner_client.get(f"{WEBHOOKS}{hook.pk}/"))


def test_a_bad_overlap_is_shown_next_to_its_field_and_rotates_nothing(owner_client, hook):
    response = owner_client.post(f"{WEBHOOKS}{hook.pk}/rotate-secret/", {"overlap_hours": "999"})
    assert response.status_code == 200
    assert response.context["rotate_form"].errors["overlap_hours"]
    hook.refresh_from_db()
    assert hook.previous_secret == ""


@pytest.fixture
def receiver(settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True  # the receiver lives on 127.0.0.1
    with Receiver() as r:
        yield r


def test_test_ping_and_redeliver_show_in_the_delivery_log(owner_client, account, receiver):
    receiver.respond(200, 503)
    sub = subscription_create(account=account, actor=None, data={"url": receiver.url})
    response = owner_client.post(f"{WEBHOOKS}{sub.pk}/test/", follow=True)
    assert "Test ping: delivered (HTTP 200)." in messages_of(response)
    (request,) = receiver.wait_for(1)
    assert request.event == "webhook.test"
    (delivery,) = response.context["deliveries"]
    assert html(response).count("HTTP 200") >= 2  # the delivery's status and its attempt
    response = owner_client.post(f"{WEBHOOKS}{sub.pk}/deliveries/{delivery.pk}/redeliver/", follow=True)
    assert any("not delivered (HTTP 503); it is retried with backoff" in m for m in messages_of(response))
    receiver.wait_for(2)
    (delivery,) = response.context["deliveries"]
    attempts = list(delivery.attempt_log.all())
    assert [a.status_code for a in attempts] == [200, 503]
    page = html(response)
    assert "HTTP 503" in page and f"{attempts[1].duration_ms} ms" in page and "Redeliver" in page
    assert delivery.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S") in page


def test_a_refused_test_ping_says_why(owner_client, account, settings):
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = True
    sub = subscription_create(account=account, actor=None, data={"url": "http://127.0.0.1:9/x"})
    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = False  # re-checked at delivery: refused, never sent
    response = owner_client.post(f"{WEBHOOKS}{sub.pk}/test/", follow=True)
    assert any("not delivered (refused:" in m for m in messages_of(response))


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", ""), ("post", ""), ("get", "delete/"), ("post", "delete/"), ("post", "rotate-secret/"), ("post", "test/")],
)
def test_another_accounts_webhook_is_404(owner_client, foreign_hook, method, suffix):
    response = getattr(owner_client, method)(f"{WEBHOOKS}{foreign_hook.pk}/{suffix}", {"url": PUBLIC_URL})
    assert response.status_code == 404
    foreign_hook.refresh_from_db()
    assert foreign_hook.previous_secret == "" and foreign_hook.deliveries.count() == 0


def test_redelivering_another_accounts_delivery_is_404(owner_client, hook, foreign_hook, other_account):
    from webhooks.services import subscription_test

    foreign = subscription_test(account=other_account, actor=None, subscription_id=foreign_hook.pk)
    assert owner_client.post(f"{WEBHOOKS}{foreign_hook.pk}/deliveries/{foreign.pk}/redeliver/").status_code == 404
    assert owner_client.post(f"{WEBHOOKS}{hook.pk}/deliveries/{foreign.pk}/redeliver/").status_code == 404
    assert foreign.attempt_log.count() == 1


# --- OAuth apps -------------------------------------------------------------------------------------


def test_register_a_confidential_app_shows_its_secret_once(owner_client, account):
    response = owner_client.post(
        OAUTH_APPS,
        {
            "name": "Zapier",
            "redirect_uris": "https://zap.example/cb\n\nhttps://zap.example/cb2",
            "client_type": "confidential",
        },
    )
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    app = get_application_model().objects.get(registration__account=account)
    secret = response.context["client_secret"]
    assert app.redirect_uris == "https://zap.example/cb https://zap.example/cb2"
    assert secret and secret in html(response) and app.client_secret != secret  # stored hashed
    listing = html(owner_client.get(OAUTH_APPS))
    assert "Zapier" in listing and app.client_id in listing and secret not in listing


def test_a_public_app_has_no_secret(owner_client, account):
    response = owner_client.post(
        OAUTH_APPS, {"name": "CLI", "redirect_uris": "http://127.0.0.1:8765/cb", "client_type": "public"}
    )
    assert response.status_code == 200 and response.context["client_secret"] is None
    assert "has no secret" in html(response)


def test_bad_redirect_uris_and_a_blank_name_are_shown_next_to_their_fields(owner_client, account):
    response = owner_client.post(
        OAUTH_APPS, {"name": "Bad", "redirect_uris": "https://app.example/cb#frag", "client_type": "confidential"}
    )
    assert response.context["form"].errors["redirect_uris"] == [
        "A redirect URI has no fragment, wildcard or credentials."
    ]
    response = owner_client.post(OAUTH_APPS, {"name": "", "redirect_uris": "", "client_type": "confidential"})
    errors = response.context["form"].errors
    assert errors["name"] == ["This field may not be blank."] and errors["redirect_uris"]
    assert not get_application_model().objects.filter(registration__account=account).exists()


def test_delete_an_app_after_confirmation(owner_client, account, owner):
    from accounts.actor import Actor

    actor = Actor(user=owner, account=account, role="owner", scopes=frozenset({"admin"}))
    app, _ = oauth_app_create(account=account, actor=actor, name="Old", redirect_uris=["https://old.example/cb"])
    assert "stops working" in html(owner_client.get(f"{OAUTH_APPS}{app.pk}/delete/"))
    response = owner_client.post(f"{OAUTH_APPS}{app.pk}/delete/", follow=True)
    assert any("deleted" in m for m in messages_of(response))
    assert not get_application_model().objects.filter(pk=app.pk).exists()


def test_another_accounts_app_is_404_and_stays(owner_client, other_account):
    from accounts.actor import Actor

    user = MembershipFactory(account=other_account).user
    actor = Actor(user=user, account=other_account, role="owner", scopes=frozenset({"admin"}))
    app, _ = oauth_app_create(account=other_account, actor=actor, name="Theirs", redirect_uris=["https://t.example/cb"])
    assert owner_client.get(f"{OAUTH_APPS}{app.pk}/delete/").status_code == 404
    assert owner_client.post(f"{OAUTH_APPS}{app.pk}/delete/").status_code == 404
    assert get_application_model().objects.filter(pk=app.pk).exists()
    assert "Theirs" not in html(owner_client.get(OAUTH_APPS))


# --- members ----------------------------------------------------------------------------------------


def test_a_member_reads_the_members_but_cannot_change_them(member_client, owner, member, account):
    response = member_client.get(MEMBERS)
    page = html(response)
    assert response.status_code == 200 and owner.email in page and member.email in page
    assert "Add a member" not in page and "/role/" not in page
    assert member_client.post(MEMBERS, {"email": "x@example.org", "role": "member"}).status_code == 403
    mine = Membership.objects.get(account=account, user=member)
    assert member_client.post(f"{MEMBERS}{mine.pk}/role/", {"role": "owner"}).status_code == 403
    assert member_client.post(f"{MEMBERS}{mine.pk}/remove/").status_code == 403
    mine.refresh_from_db()
    assert mine.role == Role.MEMBER


def test_an_admin_adds_an_existing_user_by_email(admin_client, account):
    user = UserFactory(email="grace@example.org")
    response = admin_client.post(MEMBERS, {"email": " Grace@Example.org ", "role": "admin"}, follow=True)
    assert "grace@example.org added as admin." in messages_of(response)
    assert Membership.objects.get(account=account, user=user).role == Role.ADMIN


def test_adding_twice_or_a_bad_email_is_shown_on_the_form(admin_client, member, account):
    response = admin_client.post(MEMBERS, {"email": member.email, "role": "member"})
    assert response.status_code == 200
    assert "already a member" in " ".join(response.context["form"].non_field_errors())
    response = admin_client.post(MEMBERS, {"email": "not-an-email", "role": "member"})
    assert response.context["form"].errors["email"] == ["Enter a valid email address."]
    assert 'id="id_email-error"' in html(response)


def test_an_admin_cannot_make_an_owner(admin_client, member, account):
    response = admin_client.post(MEMBERS, {"email": "boss@example.org", "role": "owner"})
    assert "Only an owner can make another owner." in " ".join(response.context["form"].non_field_errors())
    mine = Membership.objects.get(account=account, user=member)
    response = admin_client.post(f"{MEMBERS}{mine.pk}/role/", {"role": "owner"}, follow=True)
    assert f"{member.email}: Only an owner can make another owner." in messages_of(response)
    mine.refresh_from_db()
    assert mine.role == Role.MEMBER


def test_an_owner_changes_a_role_and_removes_a_member(owner_client, member, account):
    mine = Membership.objects.get(account=account, user=member)
    response = owner_client.post(f"{MEMBERS}{mine.pk}/role/", {"role": "admin"}, follow=True)
    assert f"{member.email} is now admin." in messages_of(response)
    assert "remove" in html(owner_client.get(f"{MEMBERS}{mine.pk}/remove/")).lower()
    response = owner_client.post(f"{MEMBERS}{mine.pk}/remove/", follow=True)
    assert any("removed" in m for m in messages_of(response))
    assert not Membership.objects.filter(pk=mine.pk).exists()


def test_the_last_owner_can_be_neither_demoted_nor_removed(owner_client, owner, account):
    mine = Membership.objects.get(account=account, user=owner)
    response = owner_client.post(f"{MEMBERS}{mine.pk}/role/", {"role": "member"}, follow=True)
    assert f"{owner.email}: An account needs at least one owner." in messages_of(response)
    response = owner_client.post(f"{MEMBERS}{mine.pk}/remove/", follow=True)
    assert f"{owner.email}: An account needs at least one owner." in messages_of(response)
    mine.refresh_from_db()
    assert mine.role == Role.OWNER


def test_an_unknown_role_is_refused(owner_client, member, account):
    mine = Membership.objects.get(account=account, user=member)
    response = owner_client.post(f"{MEMBERS}{mine.pk}/role/", {"role": "emperor"}, follow=True)
    assert any(m.startswith(f"{member.email}: ") for m in messages_of(response))
    mine.refresh_from_db()
    assert mine.role == Role.MEMBER


def test_another_accounts_membership_is_404(owner_client, other_account):
    foreign = MembershipFactory(account=other_account, role=Role.MEMBER)
    assert owner_client.post(f"{MEMBERS}{foreign.pk}/role/", {"role": "admin"}).status_code == 404
    assert owner_client.get(f"{MEMBERS}{foreign.pk}/remove/").status_code == 404
    assert owner_client.post(f"{MEMBERS}{foreign.pk}/remove/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.role == Role.MEMBER
    assert foreign.user.email not in html(owner_client.get(MEMBERS))


# --- plan and usage ---------------------------------------------------------------------------------


def test_the_plan_page_shows_the_cap_the_count_and_the_budget_left(client, db, settings):
    settings.LEADBASE_RATE_LIMIT_ENABLED = True
    ratelimit.reset_limiter()
    account = AccountFactory(plan="free")
    user = MembershipFactory(account=account, role=Role.MEMBER).user
    for _ in range(3):
        LeadFactory(account=account)
    LeadFactory(account=AccountFactory())  # another account's lead is not counted
    client.force_login(user)
    first = client.get(PLAN)
    assert first.status_code == 200
    usage = first.context["usage"]
    assert (usage["plan"], usage["lead_count"], usage["lead_limit"], usage["request_budget"]) == ("free", 3, 100, 100)
    assert '3 <span class="muted">of 100</span>' in html(first)
    assert first.context["decision"].remaining == 100
    assert '100 <span class="muted">left of 100</span>' in html(first)


def test_refreshing_the_plan_page_spends_nothing_while_each_api_request_spends_one(client, db, settings, make_client):
    settings.LEADBASE_RATE_LIMIT_ENABLED = True
    ratelimit.reset_limiter()
    account = AccountFactory(plan="free")
    client.force_login(MembershipFactory(account=account, role=Role.MEMBER).user)
    api = make_client(account, scopes=["leads:read"])
    shown = [client.get(PLAN).context["decision"].remaining for _ in range(5)]
    assert shown == [100] * 5
    # GET /api/v1/account is an API request: it spends one, and the page then shows what its header said.
    response = api.get("/api/v1/account")
    assert response.status_code == 200 and response["X-RateLimit-Remaining"] == "99"
    assert [client.get(PLAN).context["decision"].remaining for _ in range(5)] == [99] * 5
    assert api.get("/api/v1/account")["X-RateLimit-Remaining"] == "98"


def test_the_plan_page_of_a_spent_budget_shows_zero_left_and_when_a_slot_frees(client, db, settings, make_client):
    settings.LEADBASE_RATE_LIMIT_ENABLED = True
    ratelimit.reset_limiter()
    account = AccountFactory(plan="free", rate_limit_override=2)
    client.force_login(MembershipFactory(account=account, role=Role.MEMBER).user)
    api = make_client(account, scopes=["leads:read"])
    assert [api.get("/api/v1/account").status_code for _ in range(3)] == [200, 200, 429]
    response = client.get(PLAN)
    assert response.status_code == 200  # the page still opens, and opening it refuses no one
    decision = response.context["decision"]
    assert (decision.remaining, decision.allowed) == (0, False)
    assert 0 < decision.reset <= 600 and "leaves the window in" in html(response)


def test_a_pro_account_has_no_lead_cap(owner_client, account):
    response = owner_client.get(PLAN)
    assert response.context["usage"]["lead_limit"] is None and "No lead cap" in html(response)


# --- the pages that show a secret once --------------------------------------------------------------


def test_every_page_showing_a_secret_is_made_by_the_one_no_store_helper(owner_client, hook, monkeypatch):
    from ui.views import common

    rendered = []
    real_render = common.render
    monkeypatch.setattr(
        common,
        "render",
        lambda request, template, context: rendered.append(template) or real_render(request, template, context),
    )
    answers = [
        owner_client.post("/settings/api-keys/", {"name": "CI", "scopes": ["leads:read"]}),
        owner_client.post(
            OAUTH_APPS, {"name": "Zap", "redirect_uris": "https://zap.example/cb", "client_type": "confidential"}
        ),
        owner_client.post(WEBHOOKS, {"url": PUBLIC_URL, "event_types": ["lead.created"]}),
        owner_client.post(f"{WEBHOOKS}{hook.pk}/rotate-secret/", {"overlap_hours": "2"}),
    ]
    assert [(r.status_code, r["Cache-Control"]) for r in answers] == [(200, "no-store")] * 4
    assert rendered == [
        "ui/api_keys/created.html",
        "ui/oauth_apps/created.html",
        "ui/webhooks/secret.html",
        "ui/webhooks/secret.html",
    ]
