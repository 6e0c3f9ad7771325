"""Scoring rules in the web UI: admins and owners create, edit, toggle, delete through the scoring
services with the API's messages; everyone lists, views and previews (through rule_preview), as the
API's `leads:read` does; and the recalculation job's bar."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client

from accounts.models import Role
from jobs.models import Job, JobKind
from leads.models import Lead
from scoring.models import ScoringRule
from ui.forms_data import rule_value, rule_value_text

from .factories import LeadFactory, MembershipFactory

RULE = {"name": "Big fish", "field": "company", "operator": "contains", "value": "acme", "points": "30", "active": "on"}


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def member_client(client, account):
    client.force_login(MembershipFactory(account=account, role=Role.MEMBER).user)
    return client


@pytest.fixture
def rule(account):
    return ScoringRule.objects.create(
        account=account, name="Has phone", field="phone", operator="exists", value=True, points=10
    )


@pytest.fixture
def other_rule(other_account):
    return ScoringRule.objects.create(account=other_account, name="Theirs", field="email", operator="exists", points=5)


def errors_of(response) -> str:
    assert response.status_code == 200
    return unescape(" ".join(re.findall(r'class="error"[^>]*>([^<]+)<', response.content.decode())))


def test_the_page_lists_the_rules(owner_client, rule, other_rule):
    html = owner_client.get("/settings/scoring-rules/").content.decode()
    assert "Has phone" in html and "<code>phone</code> is present" in html and "+10" in html
    assert "Theirs" not in html
    assert '<label for="id_field">Lead field</label>' in html and 'list="rule-fields"' in html


def test_create_a_rule_rescores_and_shows_the_job(owner_client, account, django_capture_on_commit_callbacks):
    lead = LeadFactory(account=account, company="ACME Corp", score=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post("/settings/scoring-rules/", RULE)
    assert response.status_code == 302
    job = Job.objects.get(account=account, kind=JobKind.SCORE_RECALCULATION)
    assert response["Location"] == f"/settings/scoring-rules/?job={job.pk}"
    rule = ScoringRule.objects.get(account=account)
    assert (rule.name, rule.field, rule.operator, rule.value, rule.points, rule.active) == (
        "Big fish", "company", "contains", "acme", 30, True
    )  # fmt: skip
    lead.refresh_from_db()
    assert lead.score == 30
    page = owner_client.get(response["Location"]).content.decode()
    assert "Rule “Big fish” created; rescoring the leads." in page
    assert 'id="job-progress"' in page and "Succeeded" in page
    assert "hx-trigger" not in page  # the job is done (eager Celery)


def test_a_job_still_running_shows_a_polling_bar(owner_client, account):
    job = Job.objects.create(account=account, kind=JobKind.SCORE_RECALCULATION, status="running")
    page = owner_client.get(f"/settings/scoring-rules/?job={job.pk}").content.decode()
    assert f'hx-get="/jobs/{job.pk}/progress/"' in page and 'hx-trigger="every 1s"' in page


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"field": "colour"}, "Unknown field 'colour'"),
        ({"points": "500"}, "Ensure this value is less than or equal to 100."),
        ({"points": ""}, "A valid integer is required."),
        ({"name": ""}, "This field may not be blank."),
        ({"operator": "gte", "value": "5"}, "gte/lte compare numbers: use them on custom_fields.<key>."),
        ({"field": "custom_fields.size", "operator": "gte", "value": "big"}, "gte/lte need a number."),
        ({"field": "status", "operator": "equals", "value": "hot"}, "'hot' is not a lead status."),
    ],
)
def test_bad_rules_show_the_apis_message_next_to_the_field(owner_client, account, changes, message):
    response = owner_client.post("/settings/scoring-rules/", {**RULE, **changes})
    assert message in errors_of(response)
    assert 'aria-invalid="true"' in response.content.decode()
    assert not ScoringRule.objects.filter(account=account).exists()
    assert not Job.objects.exists()


def test_values_are_read_as_numbers_booleans_lists_or_text(owner_client, account):
    owner_client.post(
        "/settings/scoring-rules/",
        {**RULE, "name": "Big", "field": "custom_fields.employees", "operator": "gte", "value": "500"},
    )
    owner_client.post(
        "/settings/scoring-rules/",
        {**RULE, "name": "Warm", "field": "status", "operator": "in", "value": "new, contacted"},
    )
    owner_client.post(
        "/settings/scoring-rules/", {**RULE, "name": "Zip", "field": "custom_fields.zip", "value": '"0042"'}
    )
    values = dict(ScoringRule.objects.filter(account=account).values_list("name", "value"))
    assert values == {"Big": 500, "Warm": ["new", "contacted"], "Zip": "0042"}


@pytest.mark.parametrize(
    "value, operator",
    [("acme", "contains"), (42, "equals"), ("42", "equals"), (True, "equals"), (["a", "b, c"], "in"), ([1, "x"], "in")],
)
def test_value_text_reads_back_as_the_same_value(value, operator):
    assert rule_value(rule_value_text(value, operator), operator) == value


def test_edit_a_rule(owner_client, account, rule, django_capture_on_commit_callbacks):
    page = owner_client.get(f"/settings/scoring-rules/{rule.pk}/edit/").content.decode()
    assert 'value="Has phone"' in page and 'value="10"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            f"/settings/scoring-rules/{rule.pk}/edit/",
            {"name": "Has phone", "field": "phone", "operator": "exists", "value": "", "points": "25", "active": "on"},
        )
    assert response.status_code == 302 and "?job=" in response["Location"]
    rule.refresh_from_db()
    assert rule.points == 25 and rule.value is True


def test_an_invalid_edit_keeps_the_rule(owner_client, rule):
    response = owner_client.post(
        f"/settings/scoring-rules/{rule.pk}/edit/",
        {"name": "Has phone", "field": "phone", "operator": "gte", "value": "1", "points": "25"},
    )
    assert "gte/lte compare numbers" in errors_of(response)
    rule.refresh_from_db()
    assert rule.operator == "exists" and rule.points == 10


def test_toggle_a_rule_off_and_on(owner_client, account, rule, django_capture_on_commit_callbacks):
    lead = LeadFactory(account=account, phone="+14155550100")
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/settings/scoring-rules/{rule.pk}/toggle/")
    rule.refresh_from_db()
    assert rule.active is False
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/settings/scoring-rules/{rule.pk}/toggle/", follow=True)
    rule.refresh_from_db()
    lead.refresh_from_db()
    assert rule.active is True and lead.score == 10
    assert "Rule “Has phone” activated; rescoring the leads." in response.content.decode()


def test_delete_a_rule_after_confirming(owner_client, account, rule, django_capture_on_commit_callbacks):
    assert (
        "Delete the rule “Has phone”?"
        in owner_client.get(f"/settings/scoring-rules/{rule.pk}/delete/").content.decode()
    )
    lead = LeadFactory(account=account, phone="+14155550100", score=10)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/settings/scoring-rules/{rule.pk}/delete/")
    assert response.status_code == 302 and "?job=" in response["Location"]
    assert not ScoringRule.objects.filter(pk=rule.pk).exists()
    lead.refresh_from_db()
    assert lead.score == 0


def test_preview_with_htmx_returns_the_panel(owner_client, account):
    LeadFactory(account=account, company="Acme", score=0)
    LeadFactory(account=account, company="Other", score=0)
    response = owner_client.post("/settings/scoring-rules/preview/", RULE, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert '<strong id="preview-matches">1</strong> of 2 leads' in html
    before = re.findall(r'class="bar before"[^>]*></progress> (\d+)', html)
    after = re.findall(r'class="bar after"[^>]*></progress> (\d+)', html)
    assert before[0] == "2" and after[0] == "1" and after[3] == "1"  # one lead moves from 0-9 to 30-39
    assert not ScoringRule.objects.exists()


def test_preview_without_javascript_renders_the_page(owner_client, account):
    LeadFactory(account=account, company="Acme")
    html = owner_client.post("/settings/scoring-rules/preview/", RULE).content.decode()
    assert "<html" in html and '<strong id="preview-matches">1</strong>' in html
    assert 'value="Big fish"' in html  # the form keeps what was typed


def test_preview_of_an_invalid_rule_explains(owner_client):
    html = owner_client.post(
        "/settings/scoring-rules/preview/", {**RULE, "field": "colour"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "No preview: check the rule." in html and "Unknown field" in html


def test_preview_of_a_change_to_an_existing_rule(owner_client, account, rule):
    LeadFactory(account=account, phone="+14155550100", score=10)
    data = {
        "name": "Has phone",
        "field": "phone",
        "operator": "exists",
        "points": "50",
        "active": "on",
        "rule_id": rule.pk,
    }
    html = owner_client.post("/settings/scoring-rules/preview/", data, HTTP_HX_REQUEST="true").content.decode()
    after = re.findall(r'class="bar after"[^>]*></progress> (\d+)', html)
    assert after[5] == "1" and after[1] == "0"  # the rule's own old points are not counted twice


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/settings/scoring-rules/"),
        ("post", "/settings/scoring-rules/{id}/edit/"),
        ("post", "/settings/scoring-rules/{id}/toggle/"),
        ("get", "/settings/scoring-rules/{id}/delete/"),
        ("post", "/settings/scoring-rules/{id}/delete/"),
    ],
)
def test_a_member_gets_the_403_page(member_client, rule, method, path):
    response = getattr(member_client, method)(path.format(id=rule.pk), RULE if method == "post" else None)
    assert response.status_code == 403
    assert "Your role (member) does not allow this page." in response.content.decode()
    rule.refresh_from_db()
    assert rule.active and ScoringRule.objects.count() == 1


def test_members_see_the_scoring_link(member_client):
    assert 'href="/settings/scoring-rules/"' in member_client.get("/leads/").content.decode()


def test_a_member_sees_the_rules_without_write_controls(member_client, rule, other_rule):
    response = member_client.get("/settings/scoring-rules/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Has phone" in html and "<code>phone</code> is present" in html and "+10" in html
    assert "Theirs" not in html
    assert f'<a href="/settings/scoring-rules/{rule.pk}/edit/" aria-label="View Has phone">View</a>' in html
    for control in ("/toggle/", "/delete/", ">Edit<", "Deactivate", "Create rule", "New rule"):
        assert control not in html, control
    form = re.search(r'<form method="post" action="([^"]+)"\s+novalidate class="card rule-form"', html)
    assert form.group(1) == "/settings/scoring-rules/preview/"  # Enter previews; nothing a member can't send
    assert ">Preview</button>" in html


def test_an_admin_sees_the_write_controls(owner_client, rule):
    html = owner_client.get("/settings/scoring-rules/").content.decode()
    for control in (f"/{rule.pk}/toggle/", f"/{rule.pk}/delete/", ">Edit<", "Deactivate", "Create rule"):
        assert control in html, control
    html = owner_client.get(f"/settings/scoring-rules/{rule.pk}/edit/").content.decode()
    assert "Edit rule “Has phone”" in html and "Save rule" in html


def test_a_member_sees_a_rule_and_previews_it_but_cannot_save(member_client, account, rule):
    LeadFactory(account=account, phone="+14155550100", score=10)
    LeadFactory(account=account, phone="", email="nophone@example.org", score=0)
    response = member_client.get(f"/settings/scoring-rules/{rule.pk}/edit/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Rule “Has phone”</h1>" in html and 'value="Has phone"' in html
    assert "Save rule" not in html and "/delete/" not in html and "/toggle/" not in html
    data = {"name": "Has phone", "field": "phone", "operator": "exists", "points": "10", "active": "on"}
    panel = member_client.post("/settings/scoring-rules/preview/", {**data, "rule_id": rule.pk}, HTTP_HX_REQUEST="true")
    assert panel.status_code == 200 and '<strong id="preview-matches">1</strong> of 2 leads' in panel.content.decode()
    page = member_client.post("/settings/scoring-rules/preview/", {**data, "rule_id": rule.pk})
    html = page.content.decode()
    assert page.status_code == 200 and '<strong id="preview-matches">1</strong>' in html and "Save rule" not in html
    rule.refresh_from_db()
    assert rule.points == 10 and ScoringRule.objects.count() == 1


@pytest.mark.parametrize(
    "method, suffix",
    [("get", "edit/"), ("post", "edit/"), ("post", "toggle/"), ("get", "delete/"), ("post", "delete/")],
)
def test_another_accounts_rule_is_a_404(owner_client, other_rule, method, suffix):
    response = getattr(owner_client, method)(
        f"/settings/scoring-rules/{other_rule.pk}/{suffix}", RULE if method == "post" else None
    )
    assert response.status_code == 404
    other_rule.refresh_from_db()
    assert other_rule.active and other_rule.name == "Theirs"


def test_another_accounts_job_is_a_404_on_the_rules_page(owner_client, other_account):
    job = Job.objects.create(account=other_account, kind=JobKind.SCORE_RECALCULATION)
    assert owner_client.get(f"/settings/scoring-rules/?job={job.pk}").status_code == 404


def test_preview_of_another_accounts_rule_is_a_404(owner_client, other_rule):
    data = {**RULE, "rule_id": other_rule.pk}
    assert owner_client.post("/settings/scoring-rules/preview/", data).status_code == 404


def test_csrf_is_enforced_on_rule_changes(account, owner, rule):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/settings/scoring-rules/", RULE).status_code == 403
    assert client.post(f"/settings/scoring-rules/{rule.pk}/toggle/").status_code == 403
    assert client.post(f"/settings/scoring-rules/{rule.pk}/delete/").status_code == 403
    assert ScoringRule.objects.filter(account=account).count() == 1 and Lead.objects.count() == 0
