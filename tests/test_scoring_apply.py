"""Scores applied (§4.9): on every write path, on demand, and by recalculation jobs.

Leads are scored on single and batch create and update, `POST /leads/{id}/score` rescores one
lead now, and every rule change or `POST /scoring/recalculate` runs a job (eager here, a Celery
worker in production; see test_celery_worker.py) that rescores the account's leads and nobody
else's. Failures are recorded on the job. The preview tells what a rule would do before it is
saved. Scoring is set-based: a batch of 500 costs the same queries as a batch of 50.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from core.errors import ERROR_CODES, PROBLEM_TYPE_BASE
from jobs.models import Job, JobStatus
from leads.models import Lead
from scoring import services
from scoring.models import ScoringRule

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"
RULES = "/api/v1/scoring-rules"
RECALCULATE = "/api/v1/scoring/recalculate"
PREVIEW = "/api/v1/scoring-rules/preview"


# --- helpers --------------------------------------------------------------------------------


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert (body["code"], body["type"], ERROR_CODES[code][0]) == (code, PROBLEM_TYPE_BASE + code, status)
    return body


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks):
    """after_commit(call): run `call`, then what runs once its transaction commits (the eager
    recalculation job); the test's own transaction never commits."""

    def _run(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return _run


def rule_body(field: str, operator: str, value, points: int, name: str | None = None, **extra) -> dict:
    return {
        "name": name or f"{field} {operator}",
        "field": field,
        "operator": operator,
        "value": value,
        "points": points,
        **extra,
    }


def add_rule(client, after_commit, *args, **kwargs) -> dict:
    """Create a rule through the API and run its recalculation job."""
    response = after_commit(lambda: client.post(RULES, rule_body(*args, **kwargs), format="json"))
    assert response.status_code == 201, response.content
    return response.json()


def silent_rule(account, field: str, operator: str, value, points: int, name: str = "silent") -> ScoringRule:
    """A rule written straight to the table: no recalculation job, so existing leads keep stale scores."""
    return ScoringRule.objects.create(
        account=account, name=name, field=field, operator=operator, value=value, points=points
    )


def hit(rule, points: int | None = None) -> dict:
    if isinstance(rule, ScoringRule):
        return {"rule_id": rule.pk, "name": rule.name, "points": rule.points if points is None else points}
    return {"rule_id": rule["id"], "name": rule["name"], "points": rule["points"] if points is None else points}


def create(client, **data) -> dict:
    data.setdefault("external_id", f"x-{uuid.uuid4().hex[:10]}")
    response = client.post(LEADS, data, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def stored(lead_id) -> tuple:
    lead = Lead.objects.get(pk=lead_id)
    return lead.score, lead.score_breakdown


def snapshot(account) -> dict:
    """Everything rescoring could change, per lead of the account."""
    return {
        lead.pk: (lead.score, lead.score_breakdown, lead.scored_at, lead.version)
        for lead in Lead.objects.filter(account=account)
    }


def queries_for(call) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    return response, len(ctx.captured_queries)


@pytest.fixture
def acme_rules(api, after_commit) -> list[dict]:
    """Three rules: Acme +40, tag hot +30, a free email address -20."""
    return [
        add_rule(api, after_commit, "company", "contains", "acme", 40, "Acme"),
        add_rule(api, after_commit, "tags", "in", ["hot"], 30, "Hot"),
        add_rule(api, after_commit, "email", "is_free_email", True, -20, "Free mail"),
    ]


# --- scored on every write path ---------------------------------------------------------------


def test_a_lead_is_scored_on_create_and_reads_back_the_same(api, acme_rules):
    acme, hot, _ = acme_rules

    body = create(api, email="ann@acme.example", company="Acme Labs", tags=["Hot"])

    assert (body["score"], body["score_breakdown"]) == (70, [hit(acme), hit(hot)])
    assert body["scored_at"] is not None
    read = api.get(f"{LEADS}/{body['id']}").json()
    assert (read["score"], read["score_breakdown"], read["scored_at"]) == (
        70,
        body["score_breakdown"],
        body["scored_at"],
    )
    assert stored(body["id"]) == (70, [hit(acme), hit(hot)])


def test_a_single_update_rescores_the_lead_both_up_and_down(api, acme_rules):
    acme, hot, free = acme_rules
    lead = create(api, email="ann@gmail.com", company="Initech")
    assert (lead["score"], lead["score_breakdown"]) == (0, [hit(free)])

    up = api.put(f"{LEADS}/{lead['id']}", {"company": "ACME Inc", "tags": ["hot"]}, format="json")

    assert up.status_code == 200, up.content
    assert (up.json()["score"], up.json()["score_breakdown"]) == (50, [hit(acme), hit(hot), hit(free)])
    assert stored(lead["id"]) == (50, [hit(acme), hit(hot), hit(free)])
    assert up["ETag"] == Lead.objects.get(pk=lead["id"]).etag

    down = api.patch(f"{LEADS}/{lead['id']}", {"company": "Initech", "email": "ann@initech.example"}, format="json")

    assert down.status_code == 200, down.content
    assert (down.json()["score"], down.json()["score_breakdown"]) == (30, [hit(hot)])
    assert stored(lead["id"]) == (30, [hit(hot)])


def test_a_batch_create_scores_every_created_lead(api, account, acme_rules):
    acme, hot, free = acme_rules
    items = [
        {"email": "a@acme.example", "company": "Acme"},
        {"email": "b@gmail.com", "tags": ["hot"]},
        {"email": "c@initech.example"},
        {"email": "d@yahoo.com", "company": "Acme", "tags": ["HOT"]},
    ]

    response = api.post(f"{LEADS}/batch", {"leads": items}, format="json")

    assert response.status_code == 207, response.content
    results = response.json()["results"]
    expected = [(40, [hit(acme)]), (10, [hit(hot), hit(free)]), (0, []), (50, [hit(acme), hit(hot), hit(free)])]
    assert [(r["lead"]["score"], r["lead"]["score_breakdown"]) for r in results] == expected
    assert [stored(r["id"]) for r in results] == expected
    assert all(r["lead"]["scored_at"] is not None for r in results)


def test_a_batch_create_with_on_duplicate_update_rescores_the_merged_existing_leads(api, account, acme_rules):
    acme, hot, _ = acme_rules
    existing = create(api, email="ann@initech.example", company="Initech")
    untouched = create(api, email="bob@acme.example", company="Acme")
    assert (existing["score"], untouched["score"]) == (0, 40)

    response = api.post(
        f"{LEADS}/batch?{urlencode({'on_duplicate': 'update'})}",
        {
            "leads": [
                {"email": "ANN@initech.example", "company": "Acme", "tags": ["hot"]},
                {"email": "new@acme.example", "company": "Acme"},
            ]
        },
        format="json",
    )

    assert response.status_code == 207, response.content
    merged, created = response.json()["results"]
    assert (merged["outcome"], merged["id"]) == ("updated", existing["id"])
    assert (merged["lead"]["score"], merged["lead"]["score_breakdown"]) == (70, [hit(acme), hit(hot)])
    assert stored(existing["id"]) == (70, [hit(acme), hit(hot)])
    assert (created["outcome"], created["lead"]["score"]) == ("created", 40)
    assert stored(untouched["id"]) == (40, [hit(acme)])


def test_a_batch_update_rescores_the_changed_leads(api, account, acme_rules):
    _, hot, free = acme_rules
    first = create(api, email="a@gmail.com")
    second = create(api, email="b@acme.example", company="Acme", tags=["hot"])
    third = create(api, email="c@initech.example", company="Initech")

    response = api.put(
        f"{LEADS}/batch",
        {
            "leads": [
                {"id": first["id"], "add_tags": ["hot"]},
                {"id": second["id"], "company": "Globex", "remove_tags": ["hot"]},
                {"id": third["id"], "city": "Berlin"},
            ]
        },
        format="json",
    )

    assert response.status_code == 207, response.content
    results = response.json()["results"]
    assert [(r["lead"]["score"], r["lead"]["score_breakdown"]) for r in results] == [
        (10, [hit(hot), hit(free)]),
        (0, []),
        (0, []),
    ]
    assert [stored(lead["id"]) for lead in (first, second, third)] == [(10, [hit(hot), hit(free)]), (0, []), (0, [])]


# --- POST /leads/{id}/score -------------------------------------------------------------------


def test_scoring_a_lead_now_returns_its_new_score_and_breakdown_and_a_new_etag(api, account):
    lead = create(api, email="ann@acme.example", company="Acme")
    etag = api.get(f"{LEADS}/{lead['id']}")["ETag"]
    rule = silent_rule(account, "company", "equals", "acme", 35, "Acme")  # no job: the stored score is stale
    assert stored(lead["id"]) == (0, [])

    response = api.post(f"{LEADS}/{lead['id']}/score")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"id", "score", "score_breakdown", "scored_at"}
    assert (body["id"], body["score"], body["score_breakdown"]) == (lead["id"], 35, [hit(rule)])
    assert body["scored_at"] is not None
    assert response["ETag"] != etag
    read = api.get(f"{LEADS}/{lead['id']}")
    assert read["ETag"] == response["ETag"]
    assert (read.json()["score"], read.json()["scored_at"]) == (35, body["scored_at"])
    assert api.get(f"{LEADS}/{lead['id']}", HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_scoring_a_lead_of_another_account_is_404_and_needs_the_write_scope(api, other_api, account, make_client):
    lead = create(api, email="ann@acme.example", company="Acme")
    silent_rule(account, "company", "equals", "acme", 35)

    assert_problem(other_api.post(f"{LEADS}/{lead['id']}/score"), 404, "not_found")
    assert_problem(api.post(f"{LEADS}/{uuid.uuid4()}/score"), 404, "not_found")
    reader = make_client(account, scopes=["leads:read"])
    assert_problem(reader.post(f"{LEADS}/{lead['id']}/score"), 403, "insufficient_scope")
    assert stored(lead["id"]) == (0, [])


# --- rule changes rescore the account's leads through a job -------------------------------------


@pytest.fixture
def two_accounts(api, other_api, account, other_account, after_commit):
    """Leads in both accounts; the other account's are scored by its own rule already."""
    ours = [
        create(api, email=f"a{i}@acme.example", company="Acme" if i % 2 else "Initech", tags=["hot"] * (i % 3 == 0))
        for i in range(12)
    ]
    add_rule(other_api, after_commit, "company", "contains", "acme", 25, "Their Acme")
    for i in range(5):
        create(other_api, email=f"t{i}@acme.example", company="Acme", tags=["hot"])
    before = snapshot(other_account)
    assert {score for score, *_ in before.values()} == {25}
    return ours, before


def test_creating_changing_and_deleting_a_rule_rescores_every_lead_of_the_account_and_none_of_another(
    api, account, other_account, after_commit, two_accounts
):
    ours, theirs_before = two_accounts
    acme_ids = {lead["id"] for lead in ours if lead["company"] == "Acme"}

    created = add_rule(api, after_commit, "company", "contains", "acme", 40, "Acme")

    job = created["recalculation_job"]
    assert job["kind"] == "score_recalculation"
    stored_job = Job.objects.get(pk=job["id"])
    assert (stored_job.status, stored_job.account_id) == (JobStatus.SUCCEEDED, account.pk)
    assert stored_job.progress_done == stored_job.progress_total == 12
    assert stored_job.result == {"leads": 12, "changed": 6, "rules": 1}
    scores = {str(pk): values[0] for pk, values in snapshot(account).items()}
    assert scores == {lead["id"]: 40 if lead["id"] in acme_ids else 0 for lead in ours}
    rescored = {str(pk): values for pk, values in snapshot(account).items() if str(pk) in acme_ids}
    assert all(scored_at is not None and version == 2 for _, _, scored_at, version in rescored.values())  # new ETags
    assert snapshot(other_account) == theirs_before

    changed = after_commit(lambda: api.patch(f"{RULES}/{created['id']}", {"points": -10}, format="json"))

    assert changed.status_code == 200, changed.content
    assert changed.json()["recalculation_job"]["id"] != job["id"]
    ours_now = snapshot(account)
    assert {str(pk): v[:2] for pk, v in ours_now.items()} == {
        lead["id"]: (0, [hit(created, -10)]) if lead["id"] in acme_ids else (0, []) for lead in ours
    }
    assert snapshot(other_account) == theirs_before

    deleted = after_commit(lambda: api.delete(f"{RULES}/{created['id']}"))

    assert deleted.status_code == 202, deleted.content
    assert Job.objects.get(pk=deleted.json()["id"]).status == JobStatus.SUCCEEDED
    assert [v[:2] for v in snapshot(account).values()] == [(0, [])] * 12
    assert snapshot(other_account) == theirs_before


def test_a_rule_change_job_reports_progress_done_equal_to_total_over_several_chunks(
    api, account, after_commit, monkeypatch
):
    monkeypatch.setattr(services, "RECALCULATION_CHUNK", 4)
    LeadFactory.create_batch(10, account=account, company="Acme")
    progress: list[tuple[int, int | None]] = []
    original = services.job_progress

    def spy(*, job_id, done, total=None):
        original(job_id=job_id, done=done, total=total)
        job = Job.objects.get(pk=job_id)
        progress.append((job.progress_done, job.progress_total))

    monkeypatch.setattr(services, "job_progress", spy)

    rule = add_rule(api, after_commit, "company", "equals", "acme", 20)

    assert progress == [(4, 10), (8, 10), (10, 10)]
    job = api.get(f"/api/v1/jobs/{rule['recalculation_job']['id']}").json()
    assert (job["status"], job["progress"]) == ("succeeded", {"done": 10, "total": 10})
    assert job["result"] == {"leads": 10, "changed": 10, "rules": 1}
    assert {lead.score for lead in Lead.objects.filter(account=account)} == {20}


def test_a_rerun_with_unchanged_rules_rewrites_no_lead(api, account, after_commit):
    LeadFactory.create_batch(6, account=account, company="Acme")
    add_rule(api, after_commit, "company", "equals", "acme", 20)
    before = snapshot(account)

    response = after_commit(lambda: api.post(RECALCULATE, {}, format="json"))

    assert response.status_code == 202, response.content
    assert Job.objects.get(pk=response.json()["id"]).result == {"leads": 6, "changed": 0, "rules": 1}
    assert snapshot(account) == before


# --- POST /scoring/recalculate -------------------------------------------------------------------


def test_recalculate_with_filters_rescores_only_the_filtered_leads(api, account, other_account, after_commit):
    qualified = LeadFactory.create_batch(3, account=account, company="Acme", status="qualified")
    others = LeadFactory.create_batch(4, account=account, company="Acme", status="new")
    theirs = LeadFactory.create_batch(2, account=other_account, company="Acme", status="qualified")
    rule = silent_rule(account, "company", "equals", "acme", 30, "Acme")
    silent_rule(other_account, "company", "equals", "acme", 60, "Theirs")

    response = after_commit(lambda: api.post(RECALCULATE, {"filters": {"status": "qualified"}}, format="json"))

    assert response.status_code == 202, response.content
    job = response.json()
    assert response["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert (job["kind"], job["params"]) == ("score_recalculation", {"status": "qualified"})
    polled = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert (polled["status"], polled["progress"], polled["error"]) == ("succeeded", {"done": 3, "total": 3}, "")
    assert polled["result"] == {"leads": 3, "changed": 3, "rules": 1}
    assert polled["started_at"] is not None and polled["finished_at"] is not None
    assert [stored(lead.pk) for lead in qualified] == [(30, [hit(rule)])] * 3
    assert [stored(lead.pk) for lead in others] == [(0, [])] * 4
    assert all(Lead.objects.get(pk=lead.pk).scored_at is None for lead in others + theirs)
    assert [stored(lead.pk) for lead in theirs] == [(0, [])] * 2


def test_recalculate_without_filters_rescores_the_whole_account(api, account, after_commit):
    leads = LeadFactory.create_batch(5, account=account, company="Acme")
    silent_rule(account, "company", "equals", "acme", 30)

    response = after_commit(lambda: api.post(RECALCULATE, format="json"))

    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.status, job.progress_done, job.progress_total, job.params) == (JobStatus.SUCCEEDED, 5, 5, {})
    assert {stored(lead.pk)[0] for lead in leads} == {30}


@pytest.mark.parametrize(
    "body, code",
    [
        pytest.param({"filters": {"colour": "red"}}, "unknown_filter", id="unknown-filter"),
        pytest.param({"filters": {"score__gte": "lots"}}, "invalid_filter", id="malformed-filter-value"),
        pytest.param({"filters": {"status": "hot"}}, "invalid_filter", id="status-not-a-status"),
        pytest.param({"filters": "status=new"}, "validation_error", id="filters-not-an-object"),
        pytest.param({"filter": {"status": "new"}}, "unknown_field", id="unknown-body-field"),
    ],
)
def test_recalculate_with_a_bad_filter_is_400_and_creates_no_job(body, code, api, account, after_commit):
    LeadFactory(account=account)

    response = after_commit(lambda: api.post(RECALCULATE, body, format="json"))

    assert_problem(response, 400, code)
    assert not Job.objects.exists()


# --- jobs --------------------------------------------------------------------------------------------


def test_another_accounts_job_is_404_and_so_is_an_unknown_or_malformed_id(api, other_api, after_commit):
    response = after_commit(lambda: other_api.post(RECALCULATE, {}, format="json"))
    assert response.status_code == 202, response.content
    theirs = response.json()["id"]

    assert_problem(api.get(f"/api/v1/jobs/{theirs}"), 404, "not_found")
    assert_problem(api.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404, "not_found")
    assert_problem(api.get("/api/v1/jobs/not-a-uuid"), 404, "not_found")
    assert other_api.get(f"/api/v1/jobs/{theirs}").status_code == 200


def test_a_job_whose_rescoring_raises_is_recorded_as_failed_with_the_error(api, account, monkeypatch, after_commit):
    leads = LeadFactory.create_batch(3, account=account, company="Acme")
    silent_rule(account, "company", "equals", "acme", 30)

    def explode(**kwargs):
        raise RuntimeError("the scoring database is on fire")

    monkeypatch.setattr(services, "account_rescore", explode)

    response = after_commit(lambda: api.post(RECALCULATE, {}, format="json"))

    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == JobStatus.FAILED
    assert job.error == "RuntimeError: the scoring database is on fire"
    assert job.finished_at is not None
    body = api.get(f"/api/v1/jobs/{job.pk}").json()
    assert (body["status"], body["error"]) == ("failed", "RuntimeError: the scoring database is on fire")
    assert [stored(lead.pk) for lead in leads] == [(0, [])] * 3


def test_in_the_embedded_mode_a_transient_database_error_fails_the_job_at_once_with_the_error(
    api, account, monkeypatch, after_commit
):
    calls = []

    def down(**kwargs):
        calls.append(kwargs)
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(services, "account_rescore", down)

    response = after_commit(lambda: api.post(RECALCULATE, {}, format="json"))

    assert response.status_code == 202, response.content
    assert len(calls) == 1  # run eagerly, nobody would retry later (a worker does: test_celery_worker.py)
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.status, job.error) == (JobStatus.FAILED, "OperationalError: could not connect to server")


def test_a_job_that_cannot_be_enqueued_is_recorded_as_failed_not_left_queued(api, account, monkeypatch, after_commit):
    from scoring import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(tasks.recalculate_account, "delay", broker_down)

    response = after_commit(lambda: api.post(RECALCULATE, {}, format="json"))

    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.status, job.error) == (
        JobStatus.FAILED,
        "ConnectionError: Error 111 connecting to redis:6379. Connection refused.",
    )


@pytest.mark.django_db(transaction=True)
def test_in_the_embedded_mode_a_failing_job_answers_202_with_the_failed_job_not_a_500(api, account, monkeypatch):
    LeadFactory.create_batch(2, account=account, company="Acme")

    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(services, "account_rescore", explode)

    recalculate = api.post(RECALCULATE, {}, format="json")
    created = api.post(RULES, rule_body("company", "equals", "acme", 10), format="json")

    assert recalculate.status_code == 202, recalculate.content
    assert (recalculate.json()["status"], recalculate.json()["error"]) == ("failed", "RuntimeError: boom")
    assert created.status_code == 201, created.content
    assert created.json()["recalculation_job"]["status"] == "failed"
    assert ScoringRule.objects.filter(account=account).count() == 1
    assert set(Job.objects.filter(account=account).values_list("status", flat=True)) == {JobStatus.FAILED}


@pytest.mark.django_db(transaction=True)
def test_in_the_embedded_mode_a_rule_change_answers_with_its_finished_job(api, account):
    LeadFactory.create_batch(3, account=account, company="Acme")

    response = api.post(RULES, rule_body("company", "equals", "acme", 10), format="json")

    assert response.status_code == 201, response.content
    job = response.json()["recalculation_job"]
    assert (job["status"], job["progress"], job["result"]) == (
        "succeeded",
        {"done": 3, "total": 3},
        {"leads": 3, "changed": 3, "rules": 1},
    )
    assert {lead.score for lead in Lead.objects.filter(account=account)} == {10}


# --- preview --------------------------------------------------------------------------------------

BUCKETS = ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90-100"]


@pytest.fixture
def scored_leads(api, account, after_commit) -> dict:
    """10 leads: 4 at Acme (30 points), of which 2 hot; 6 elsewhere (0), of which 1 hot."""
    acme = add_rule(api, after_commit, "company", "equals", "acme", 30, "Acme")
    for i in range(10):
        create(
            api,
            email=f"l{i}@example.org",
            company="Acme" if i < 4 else "Initech",
            tags=["hot"] if i in (0, 1, 5) else [],
        )
    return acme


def test_preview_tells_how_many_leads_a_new_rule_matches_and_the_distribution_before_and_after(
    api, account, scored_leads, make_client
):
    before = snapshot(account)
    reader = make_client(account, scopes=["leads:read"])

    response = reader.post(PREVIEW, rule_body("tags", "equals", "hot", 50), format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["matches"], body["total"]) == (3, 10)
    assert body["distribution"]["buckets"] == BUCKETS
    assert body["distribution"]["before"] == [6, 0, 0, 4, 0, 0, 0, 0, 0, 0]
    assert body["distribution"]["after"] == [5, 0, 0, 2, 0, 1, 0, 0, 2, 0]
    assert ScoringRule.objects.filter(account=account).count() == 1
    assert Job.objects.filter(account=account).count() == 1  # the fixture's rule only
    assert snapshot(account) == before


def test_preview_of_a_change_to_an_existing_rule_replaces_its_points_instead_of_adding_them(api, account, scored_leads):
    before = snapshot(account)

    response = api.post(
        PREVIEW, {**rule_body("company", "equals", "acme", 5, "Acme"), "rule_id": scored_leads["id"]}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["matches"] == 4
    assert body["distribution"]["before"] == [6, 0, 0, 4, 0, 0, 0, 0, 0, 0]
    assert body["distribution"]["after"] == [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert ScoringRule.objects.get(pk=scored_leads["id"]).points == 30
    assert snapshot(account) == before


def test_preview_of_deactivating_a_rule_shows_its_points_gone(api, scored_leads):
    body = api.post(
        PREVIEW,
        {**rule_body("company", "equals", "acme", 30, "Acme", active=False), "rule_id": scored_leads["id"]},
        format="json",
    ).json()

    assert body["distribution"]["after"] == [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def test_preview_puts_a_score_of_100_in_the_last_bucket(api, scored_leads):
    body = api.post(PREVIEW, rule_body("company", "equals", "acme", 100), format="json").json()

    assert body["distribution"]["after"] == [6, 0, 0, 0, 0, 0, 0, 0, 0, 4]


def test_preview_of_an_invalid_rule_is_400_validation_error(api, scored_leads):
    response = api.post(PREVIEW, rule_body("company", "gte", 3, 10), format="json")

    problem = assert_problem(response, 400, "validation_error")
    assert "operator" in {error["field"] for error in problem["errors"]}


# --- set-based: query counts -------------------------------------------------------------------------


def test_a_batch_create_of_50_and_of_500_leads_with_3_active_rules_issue_the_same_number_of_queries(
    api, account, acme_rules
):
    api.get(f"{LEADS}?limit=1")

    def items(n: int, run: str) -> list[dict]:
        return [
            {
                "email": f"{run}{i}@{'gmail.com' if i % 3 else 'acme.example'}",
                "company": "Acme" if i % 2 else "",
                "tags": ["hot"] if i % 5 == 0 else [],
            }
            for i in range(n)
        ]

    small, small_queries = queries_for(lambda: api.post(f"{LEADS}/batch", {"leads": items(50, "s")}, format="json"))
    large, large_queries = queries_for(lambda: api.post(f"{LEADS}/batch", {"leads": items(500, "l")}, format="json"))

    assert small.status_code == large.status_code == 207
    assert small_queries == large_queries
    scores = [r["lead"]["score"] for r in large.json()["results"]]
    expected = [max(0, min(100, 40 * (i % 2) + 30 * (i % 5 == 0) - 20 * bool(i % 3))) for i in range(500)]
    assert scores == expected
    by_id = dict(Lead.objects.filter(account=account).values_list("id", "score"))
    assert [by_id[uuid.UUID(r["id"])] for r in large.json()["results"]] == expected
