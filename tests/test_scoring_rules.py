"""Scoring rules (§4.9): what each operator matches, how points add up, and the rules API.

The operator table is declarative: each row is a rule, a lead that must match it and one that
must not. Every row is checked twice, through both ways a lead gets scored: leads that existed
before the rule are rescored by the recalculation job the rule's creation enqueues, and leads
created after it are scored on create. Both must agree.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from accounts.models import Role
from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from scoring.models import ScoringRule

from .factories import MembershipFactory

pytestmark = pytest.mark.django_db

RULES = "/api/v1/scoring-rules"
LEADS = "/api/v1/leads"
POINTS = 15


# --- helpers --------------------------------------------------------------------------------


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["type"] == PROBLEM_TYPE_BASE + code
    assert ERROR_CODES[code][0] == status
    return body


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks):
    """after_commit(call): run `call`, then what would run once its transaction commits (the
    eager recalculation job). Tests run inside a transaction that never commits, so without this
    the job enqueued by a rule change would never run."""

    def _run(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return _run


@pytest.fixture
def create_rule(api, after_commit):
    """create_rule(field, operator, value, points=15, **extra) -> the created rule as the API returns it."""

    def _create(field_name: str, operator: str, value: Any = None, points: int = POINTS, client=None, **extra) -> dict:
        body = {"name": extra.pop("name", f"{field_name} {operator}"), "field": field_name, "operator": operator}
        body.update(points=points, **extra)
        if value is not None:
            body["value"] = value
        response = after_commit(lambda: (client or api).post(RULES, body, format="json"))
        assert response.status_code == 201, response.content
        return response.json()

    return _create


_ids = itertools.count()


def create_lead(client, data: dict) -> dict:
    body = {"external_id": f"lead-{next(_ids)}", **data}
    response = client.post(LEADS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def get_lead(client, lead_id: str) -> dict:
    response = client.get(f"{LEADS}/{lead_id}")
    assert response.status_code == 200, response.content
    return response.json()


def hit(rule: dict, points: int | None = None) -> dict:
    """The breakdown entry a matching rule contributes."""
    return {"rule_id": rule["id"], "name": rule["name"], "points": rule["points"] if points is None else points}


# --- every operator: a lead that matches and one that does not ---------------------------

OWNER, OTHER_MEMBER = "<owner>", "<other member>"  # placeholders for user ids made per test


@dataclass
class Row:
    field: str
    operator: str
    value: Any
    matches: dict
    misses: dict
    id: str = field(default="")


ROWS = [
    # text fields compare case-insensitively
    Row("company", "equals", "ACME Inc", {"company": "acme inc"}, {"company": "Acme Incorporated"}),
    Row("email", "equals", "Ann@Acme.Example", {"email": "ann@acme.example"}, {"email": "bob@acme.example"}),
    Row("first_name", "not_equals", "ada", {"first_name": "Grace"}, {"first_name": "ADA"}),
    Row("last_name", "not_equals", "Lovelace", {}, {"last_name": "lovelace"}, "not_equals-matches-an-absent-value"),
    Row("job_title", "contains", "cto", {"job_title": "Co-founder & CTO"}, {"job_title": "Developer"}),
    Row("source", "contains", "PARTNER", {"source": "partner:acme"}, {"source": "web_form"}),
    Row("country", "in", ["de", "Fr"], {"country": "DE"}, {"country": "US"}),
    Row("city", "in", ["BERLIN", "paris"], {"city": "Berlin"}, {"city": "Bern"}),
    Row("status", "equals", "qualified", {"status": "qualified"}, {"status": "new"}),
    Row("status", "in", ["qualified", "converted"], {"status": "converted"}, {"status": "lost"}),
    Row("city", "exists", True, {"city": "Berlin"}, {"city": ""}),
    Row("website", "exists", False, {}, {"website": "https://acme.example"}),
    Row("email", "is_free_email", True, {"email": "ann@GMail.com"}, {"email": "ann@acme.example"}),
    Row("email", "is_free_email", False, {"email": "ann@acme.example"}, {"email": "ann@outlook.com"}),
    Row("email", "is_free_email", False, {"email": "ann@acme.example"}, {"phone": "+49301234567"}, "no-email-is-no-company-email"),  # noqa: E501
    # tags: the lead carries the tag (case-insensitively)
    Row("tags", "equals", "HOT", {"tags": ["smb", "hot"]}, {"tags": ["hotel"]}),
    Row("tags", "contains", "vip", {"tags": ["VIP"]}, {"tags": []}),
    Row("tags", "in", ["enterprise", "Partner"], {"tags": ["partner"]}, {"tags": ["smb"]}),
    Row("tags", "not_equals", "churn-risk", {"tags": ["smb"]}, {"tags": ["churn-risk", "smb"]}),
    Row("tags", "exists", True, {"tags": ["smb"]}, {"tags": []}),
    Row("tags", "exists", False, {}, {"tags": ["smb"]}),
    # owner: a member's user id
    Row("owner", "equals", OWNER, {"owner": OWNER}, {"owner": OTHER_MEMBER}),
    Row("owner", "not_equals", OWNER, {"owner": OTHER_MEMBER}, {"owner": OWNER}),
    Row("owner", "in", [OWNER], {"owner": OWNER}, {}),
    Row("owner", "exists", True, {"owner": OTHER_MEMBER}, {}),
    Row("owner", "exists", False, {}, {"owner": OWNER}),
    # email_domain: the part after the @, case-insensitively
    Row("email_domain", "equals", "Acme.Example", {"email": "ann@ACME.example"}, {"email": "ann@notacme.example"}),
    Row("email_domain", "not_equals", "gmail.com", {"email": "ann@acme.example"}, {"email": "ann@gmail.com"}),
    Row("email_domain", "contains", "ACME", {"email": "ann@acme.example"}, {"email": "acme@globex.example"}),
    Row("email_domain", "in", ["acme.example", "GLOBEX.example"], {"email": "a@globex.example"}, {"email": "a@initech.example"}),  # noqa: E501
    Row("email_domain", "exists", True, {"email": "ann@acme.example"}, {"phone": "+49301234567"}),
    Row("email_domain", "exists", False, {"phone": "+49301234567"}, {"email": "ann@acme.example"}),
    Row("email_domain", "is_free_email", True, {"email": "ann@yahoo.com"}, {"email": "ann@acme.example"}),
    Row("email_domain", "is_free_email", False, {"email": "ann@acme.example"}, {"email": "ann@gmx.de"}),
    # custom fields: strings case-insensitively, numbers and booleans as values
    Row("custom_fields.plan", "equals", "Enterprise", {"custom_fields": {"plan": "enterprise"}}, {"custom_fields": {"plan": "starter"}}),  # noqa: E501
    Row("custom_fields.plan", "not_equals", "free", {"custom_fields": {"plan": "pro"}}, {"custom_fields": {"plan": "FREE"}}),  # noqa: E501
    Row("custom_fields.plan", "contains", "PRISE", {"custom_fields": {"plan": "Enterprise"}}, {"custom_fields": {"plan": "pro"}}),  # noqa: E501
    Row("custom_fields.plan", "in", ["pro", "enterprise"], {"custom_fields": {"plan": "PRO"}}, {"custom_fields": {"plan": "free"}}),  # noqa: E501
    Row("custom_fields.plan", "exists", True, {"custom_fields": {"plan": "pro"}}, {"custom_fields": {"seats": 3}}),
    Row("custom_fields.plan", "exists", False, {"custom_fields": {"seats": 3}}, {"custom_fields": {"plan": "pro"}}),
    Row("custom_fields.plan", "exists", False, {"custom_fields": {"plan": None}}, {"custom_fields": {"plan": ""}}, "exists-false-null-is-absent"),  # noqa: E501
    Row("custom_fields.employees", "equals", 250, {"custom_fields": {"employees": 250}}, {"custom_fields": {"employees": 80}}),  # noqa: E501
    Row("custom_fields.employees", "in", [20, 80], {"custom_fields": {"employees": 80}}, {"custom_fields": {"employees": 250}}),  # noqa: E501
    Row("custom_fields.employees", "gte", 100, {"custom_fields": {"employees": 100}}, {"custom_fields": {"employees": 99.5}}),  # noqa: E501
    Row("custom_fields.employees", "lte", 50, {"custom_fields": {"employees": 50}}, {"custom_fields": {"employees": 51}}),  # noqa: E501
    Row("custom_fields.employees", "lte", 50, {"custom_fields": {"employees": 7}}, {"custom_fields": {"employees": "few"}}, "lte-ignores-a-string"),  # noqa: E501
    Row("custom_fields.employees", "lte", 50, {"custom_fields": {"employees": 0}}, {"custom_fields": {"employees": None}}, "lte-ignores-null"),  # noqa: E501
    Row("custom_fields.employees", "gte", 1, {"custom_fields": {"employees": 2}}, {"custom_fields": {"employees": True}}, "gte-ignores-a-boolean"),  # noqa: E501
    Row("custom_fields.employees", "gte", 10, {"custom_fields": {"employees": 10}}, {}, "gte-ignores-a-missing-key"),
    Row("custom_fields.newsletter", "equals", True, {"custom_fields": {"newsletter": True}}, {"custom_fields": {"newsletter": False}}),  # noqa: E501
    Row("custom_fields.newsletter", "equals", False, {"custom_fields": {"newsletter": False}}, {"custom_fields": {"newsletter": True}}),  # noqa: E501
    Row("custom_fields.newsletter", "equals", True, {"custom_fields": {"newsletter": True}}, {"custom_fields": {"newsletter": 1}}, "true-is-not-1"),  # noqa: E501
    Row("custom_fields.employees", "equals", 1, {"custom_fields": {"employees": 1.0}}, {"custom_fields": {"employees": True}}, "1-is-not-true"),  # noqa: E501
    Row("custom_fields.plan", "equals", "true", {"custom_fields": {"plan": "TRUE"}}, {"custom_fields": {"plan": True}}, "a-string-is-not-a-boolean"),  # noqa: E501
    Row("custom_fields.plan", "contains", "ru", {"custom_fields": {"plan": "truly"}}, {"custom_fields": {"plan": True}}, "contains-looks-at-strings"),  # noqa: E501
    Row("custom_fields.newsletter", "not_equals", True, {"custom_fields": {"newsletter": False}}, {"custom_fields": {"newsletter": True}}),  # noqa: E501
]  # fmt: skip


def _row_id(row: Row) -> str:
    value = "" if isinstance(row.value, list) else f"-{row.value}"
    return f"{row.field}-{row.operator}{value}" + (f"-{row.id}" if row.id else "")


def test_the_operator_table_covers_every_operator_and_every_kind_of_field():
    from scoring.models import Operator

    assert {row.operator for row in ROWS} == set(Operator.values)
    assert {row.value for row in ROWS if row.operator in ("exists", "is_free_email")} == {True, False}
    kinds = {
        "tags",
        "owner",
        "email_domain",
        "custom_fields.plan",
        "custom_fields.employees",
        "custom_fields.newsletter",
    }
    assert kinds <= {row.field for row in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=[_row_id(row) for row in ROWS])
def test_a_rule_scores_the_lead_it_describes_and_not_the_other_one(row, api, account, create_rule):
    members = {
        OWNER: MembershipFactory(account=account).user.pk,
        OTHER_MEMBER: MembershipFactory(account=account).user.pk,
    }

    def resolve(value):
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return members.get(value, value) if isinstance(value, str) else value

    matches, misses = resolve(row.matches), resolve(row.misses)

    # Leads that exist before the rule: rescored by the job its creation enqueues.
    before_match, before_miss = create_lead(api, matches), create_lead(api, misses)
    assert before_match["score"] == before_miss["score"] == 0
    rule = create_rule(row.field, row.operator, resolve(row.value))

    assert rule["recalculation_job"]["kind"] == "score_recalculation"
    matched, missed = get_lead(api, before_match["id"]), get_lead(api, before_miss["id"])
    assert (matched["score"], matched["score_breakdown"]) == (POINTS, [hit(rule)])
    assert matched["scored_at"] is not None
    assert (missed["score"], missed["score_breakdown"]) == (0, [])

    # Leads created after the rule: scored on create, with the same result.
    for lead in (before_match, before_miss):
        assert api.delete(f"{LEADS}/{lead['id']}").status_code == 204
    after_match, after_miss = create_lead(api, matches), create_lead(api, misses)
    assert (after_match["score"], after_match["score_breakdown"]) == (POINTS, [hit(rule)])
    assert (after_miss["score"], after_miss["score_breakdown"]) == (0, [])
    assert after_match["scored_at"] is not None


# --- points: negative, clamped, the breakdown --------------------------------------------------


def test_negative_points_subtract_from_the_score(api, create_rule):
    company = create_rule("company", "contains", "acme", points=40, name="Acme")
    title = create_rule("job_title", "equals", "cto", points=30, name="CTO")
    free = create_rule("email", "is_free_email", True, points=-25, name="Free mail")

    lead = create_lead(api, {"email": "ann@gmail.com", "company": "Acme", "job_title": "CTO"})

    assert lead["score"] == 45
    assert lead["score_breakdown"] == [hit(company), hit(title), hit(free)]


def test_a_negative_sum_is_clamped_at_zero_and_the_breakdown_keeps_the_real_points(api, create_rule):
    company = create_rule("company", "equals", "acme", points=20)
    free = create_rule("email_domain", "is_free_email", True, points=-50)

    lead = create_lead(api, {"email": "ann@gmail.com", "company": "Acme"})

    assert lead["score"] == 0
    assert lead["score_breakdown"] == [hit(company, 20), hit(free, -50)]


def test_a_sum_above_100_is_clamped_at_100(api, create_rule):
    rules = [
        create_rule("company", "equals", "acme", points=60),
        create_rule("tags", "equals", "hot", points=50),
        create_rule("country", "equals", "de", points=40),
    ]

    lead = create_lead(api, {"email": "ann@acme.example", "company": "Acme", "tags": ["hot"], "country": "DE"})

    assert lead["score"] == 100
    assert lead["score_breakdown"] == [hit(rule) for rule in rules]
    assert sum(entry["points"] for entry in lead["score_breakdown"]) == 150


def test_a_sum_of_exactly_100_is_not_clamped_further_and_one_point_less_is_99(api, create_rule):
    create_rule("company", "equals", "acme", points=100)
    create_rule("tags", "equals", "cold", points=-1)

    exact = create_lead(api, {"company": "Acme"})
    below = create_lead(api, {"company": "Acme", "tags": ["cold"]})

    assert (exact["score"], below["score"]) == (100, 99)


def test_the_breakdown_lists_exactly_the_matching_active_rules_in_rule_id_order(api, after_commit, create_rule):
    first = create_rule("tags", "equals", "hot", points=10, name="Hot")
    create_rule("company", "equals", "globex", points=20, name="Globex")  # does not match
    third = create_rule("country", "equals", "de", points=-5, name="Germany")
    create_rule("city", "equals", "berlin", points=50, name="Berlin (off)", active=False)  # matches, inactive
    fifth = create_rule("email_domain", "equals", "acme.example", points=7, name="Acme domain")
    # Changing the first rule later must not move it in the breakdown (id order, not update order).
    response = after_commit(lambda: api.patch(f"{RULES}/{first['id']}", {"points": 12}, format="json"))
    assert response.status_code == 200, response.content
    first = response.json()

    lead = create_lead(
        api, {"email": "ann@acme.example", "company": "Acme", "tags": ["hot"], "country": "DE", "city": "Berlin"}
    )

    assert lead["score_breakdown"] == [hit(first, 12), hit(third, -5), hit(fifth, 7)]
    assert lead["score"] == 14


def test_inactive_rules_are_ignored_until_activated_and_again_once_deactivated(api, after_commit, create_rule):
    lead = create_lead(api, {"company": "Acme"})
    rule = create_rule("company", "equals", "acme", points=30, active=False)

    assert rule["active"] is False
    assert get_lead(api, lead["id"])["score"] == 0
    assert create_lead(api, {"company": "Acme", "city": "Rome"})["score"] == 0

    on = after_commit(lambda: api.patch(f"{RULES}/{rule['id']}", {"active": True}, format="json"))
    assert on.status_code == 200, on.content
    assert (get_lead(api, lead["id"])["score"], get_lead(api, lead["id"])["score_breakdown"]) == (30, [hit(rule, 30)])

    off = after_commit(lambda: api.patch(f"{RULES}/{rule['id']}", {"active": False}, format="json"))
    assert off.status_code == 200, off.content
    assert (get_lead(api, lead["id"])["score"], get_lead(api, lead["id"])["score_breakdown"]) == (0, [])


def test_an_account_without_active_rules_scores_every_lead_zero(api, create_rule):
    create_rule("company", "equals", "acme", points=30, active=False)

    lead = create_lead(api, {"company": "Acme"})

    assert (lead["score"], lead["score_breakdown"]) == (0, [])


def test_rules_of_another_account_never_score_this_accounts_leads(api, other_account, make_client, after_commit):
    other = make_client(other_account)
    response = after_commit(
        lambda: other.post(
            RULES,
            {"name": "Acme", "field": "company", "operator": "equals", "value": "acme", "points": 50},
            format="json",
        )
    )
    assert response.status_code == 201, response.content

    lead = create_lead(api, {"company": "Acme"})

    assert (lead["score"], lead["score_breakdown"]) == (0, [])
    assert create_lead(other, {"company": "Acme"})["score"] == 50


# --- the rules API: validation -------------------------------------------------------------------


def _rule(**overrides) -> dict:
    return {"name": "A rule", "field": "company", "operator": "equals", "value": "acme", "points": 10, **overrides}


@pytest.mark.parametrize(
    "body, field_name",
    [
        pytest.param(_rule(field="favourite_colour"), "field", id="unknown-field"),
        pytest.param(_rule(field="custom_fields."), "field", id="custom-field-without-a-key"),
        pytest.param(_rule(field="custom_fields.a__b"), "field", id="custom-field-key-with-a-lookup"),
        pytest.param(_rule(operator="matches"), "operator", id="unknown-operator"),
        pytest.param(_rule(operator="gte", value=10), "operator", id="gte-on-a-text-field"),
        pytest.param(_rule(field="city", operator="lte", value=3), "operator", id="lte-on-a-text-field"),
        pytest.param(
            _rule(field="custom_fields.seats", operator="gte", value="ten"), "value", id="gte-without-a-number"
        ),
        pytest.param(_rule(field="custom_fields.seats", operator="gte", value=True), "value", id="gte-with-a-boolean"),
        pytest.param(_rule(operator="in", value="acme"), "value", id="in-without-a-list"),
        pytest.param(_rule(operator="in", value=[]), "value", id="in-with-an-empty-list"),
        pytest.param(_rule(operator="in", value=[["nested"]]), "value", id="in-with-a-nested-list"),
        pytest.param(_rule(operator="is_free_email", value=True), "field", id="is_free_email-on-company"),
        pytest.param(
            _rule(field="email", operator="is_free_email", value="yes"), "value", id="is_free_email-not-boolean"
        ),
        pytest.param(_rule(field="email", operator="exists", value="yes"), "value", id="exists-not-boolean"),
        pytest.param(_rule(field="status", value="hot"), "value", id="status-value-not-a-status"),
        pytest.param(_rule(field="status", operator="in", value=["new", "hot"]), "value", id="status-in-not-statuses"),
        pytest.param(_rule(operator="contains", value=5), "value", id="contains-without-a-string"),
        pytest.param(_rule(value=None), "value", id="equals-without-a-value"),
        pytest.param(_rule(value={"a": 1}), "value", id="equals-an-object"),
        pytest.param(_rule(points=101), "points", id="points-above-100"),
        pytest.param(_rule(points=-101), "points", id="points-below-minus-100"),
        pytest.param(_rule(points=2.5), "points", id="points-not-whole"),
        pytest.param({k: v for k, v in _rule().items() if k != "points"}, "points", id="points-missing"),
        pytest.param({k: v for k, v in _rule().items() if k != "name"}, "name", id="name-missing"),
    ],
)
def test_an_invalid_rule_is_400_validation_error_naming_the_field(body, field_name, api, account):
    response = api.post(RULES, body, format="json")

    problem = assert_problem(response, 400, "validation_error")
    assert field_name in {error["field"] for error in problem["errors"]}, problem
    assert not ScoringRule.objects.filter(account=account).exists()


@pytest.mark.parametrize("points", [-100, 100, 0])
def test_points_at_the_limits_are_accepted(points, api, create_rule):
    assert create_rule("company", "equals", "acme", points=points)["points"] == points


def test_an_unknown_body_field_is_400_unknown_field(api, account):
    response = api.post(RULES, _rule(weight=3), format="json")

    problem = assert_problem(response, 400, "unknown_field")
    assert [error["field"] for error in problem["errors"]] == ["weight"]
    assert not ScoringRule.objects.filter(account=account).exists()


def test_an_invalid_change_to_a_rule_is_400_and_leaves_the_rule_as_it_was(api, create_rule):
    rule = create_rule("company", "equals", "acme", points=10)

    response = api.patch(f"{RULES}/{rule['id']}", {"operator": "gte"}, format="json")

    problem = assert_problem(response, 400, "validation_error")
    assert "operator" in {error["field"] for error in problem["errors"]}
    assert api.get(f"{RULES}/{rule['id']}").json()["operator"] == "equals"


def test_a_rule_is_returned_as_created_and_listed_in_id_order(api, create_rule):
    first = create_rule("tags", "in", ["Hot", "vip"], points=-20, name="Hot or VIP")
    second = create_rule("custom_fields.seats", "gte", 10, points=5, name="Ten seats")

    assert {k: first[k] for k in ("name", "field", "operator", "value", "points", "active")} == {
        "name": "Hot or VIP",
        "field": "tags",
        "operator": "in",
        "value": ["Hot", "vip"],
        "points": -20,
        "active": True,
    }
    listed = api.get(RULES).json()["results"]
    assert [r["id"] for r in listed] == [first["id"], second["id"]]
    assert api.get(f"{RULES}/{second['id']}").json()["value"] == 10


def test_exists_without_a_value_means_exists_true(api, create_rule):
    rule = create_rule("city", "exists", None)

    assert rule["value"] is True
    assert create_lead(api, {"city": "Berlin"})["score"] == POINTS
    assert create_lead(api, {})["score"] == 0


# --- the rules API: who may change rules, and whose rules ------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"role": Role.MEMBER, "scopes": ["leads:read", "leads:write"]}, id="member-role"),
        pytest.param({"scopes": ["leads:read"]}, id="leads-read-key"),
        pytest.param({"scopes": ["leads:read", "leads:write"]}, id="leads-write-key"),
    ],
)
def test_only_admins_change_rules_but_everyone_may_list_and_read_them(
    credentials, account, make_client, create_rule, after_commit
):
    rule = create_rule("company", "equals", "acme", points=10)
    client = make_client(account, **credentials)

    assert_problem(client.post(RULES, _rule(), format="json"), 403, "insufficient_scope")
    assert_problem(client.patch(f"{RULES}/{rule['id']}", {"points": 90}, format="json"), 403, "insufficient_scope")
    assert_problem(client.delete(f"{RULES}/{rule['id']}"), 403, "insufficient_scope")
    assert_problem(client.post("/api/v1/scoring/recalculate", {}, format="json"), 403, "insufficient_scope")

    listed = client.get(RULES)
    assert listed.status_code == 200, listed.content
    assert [r["id"] for r in listed.json()["results"]] == [rule["id"]]
    assert client.get(f"{RULES}/{rule['id']}").json()["points"] == 10
    assert ScoringRule.objects.filter(account=account).count() == 1


def test_an_admin_member_may_create_rules(account, make_client, create_rule):
    admin = make_client(account, role=Role.ADMIN)

    assert create_rule("company", "equals", "acme", client=admin)["field"] == "company"


def test_another_accounts_rule_is_404_on_read_change_and_delete(api, other_account, make_client, after_commit):
    other = make_client(other_account)
    response = after_commit(lambda: other.post(RULES, _rule(points=33), format="json"))
    assert response.status_code == 201, response.content
    theirs = response.json()["id"]

    assert_problem(api.get(f"{RULES}/{theirs}"), 404, "not_found")
    assert_problem(api.patch(f"{RULES}/{theirs}", {"points": 1}, format="json"), 404, "not_found")
    assert_problem(api.put(f"{RULES}/{theirs}", {"points": 1}, format="json"), 404, "not_found")
    assert_problem(api.delete(f"{RULES}/{theirs}"), 404, "not_found")
    assert api.get(RULES).json()["results"] == []
    preview = api.post(f"{RULES}/preview", {**_rule(), "rule_id": theirs}, format="json")
    assert_problem(preview, 404, "not_found")

    rule = ScoringRule.objects.get(pk=theirs)
    assert (rule.points, rule.account_id) == (33, other_account.pk)


@pytest.mark.parametrize("rule_id", ["999999", "abc", "1.0"])
def test_an_unknown_or_malformed_rule_id_is_404(rule_id, api):
    assert_problem(api.get(f"{RULES}/{rule_id}"), 404, "not_found")


def test_deleting_a_rule_answers_202_with_its_recalculation_job_and_removes_it(api, account, after_commit, create_rule):
    rule = create_rule("company", "equals", "acme", points=10)

    response = after_commit(lambda: api.delete(f"{RULES}/{rule['id']}"))

    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "score_recalculation"
    assert not ScoringRule.objects.filter(account=account).exists()
    assert_problem(api.get(f"{RULES}/{rule['id']}"), 404, "not_found")
