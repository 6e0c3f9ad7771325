"""LeadRank: the score index lives in its own table, kept equal to the leads' scores by database
triggers, so a rescoring UPDATE of the lead row is heap-only (leads.models.LeadRank, leads.ranking).

Every write path keeps the rank equal to the lead's score (create, batch create, update, rescoring,
delete, batch delete, account deletion); the one-statement rescoring chunk on PostgreSQL writes the
same rows and lead.scored events as the ORM path; and no index of leads_lead covers a column a
rescoring changes.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from accounts.models import Account
from leads.models import Lead, LeadRank
from leads.ranking import ensure_rank_triggers
from scoring import services
from scoring.models import ScoringRule
from webhooks.models import Event, EventType, WebhookDelivery, WebhookSubscription
from webhooks.services import events_record

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

LEADS = "/api/v1/leads"


def ranks_match_scores(account) -> None:
    leads = dict(Lead.objects.filter(account=account).values_list("pk", "score"))
    ranks = dict(LeadRank.objects.filter(account=account).values_list("lead_id", "score"))
    assert ranks == leads


def add_rule(account, **fields) -> ScoringRule:
    data = {"name": "rule", "field": "country", "operator": "equals", "value": "DE", "points": 30, "active": True}
    data.update(fields)
    return ScoringRule.objects.create(account=account, **data)


def test_every_write_path_keeps_the_rank_equal_to_the_score(api, account):
    add_rule(account, field="country", value="DE", points=30)
    created = api.post(LEADS, {"email": "one@acme.test", "country": "DE"}, format="json")
    assert created.status_code == 201 and created.json()["score"] == 30
    batch = api.post(
        f"{LEADS}/batch",
        {"leads": [{"email": f"b{n}@acme.test", "country": "DE" if n % 2 else "FR"} for n in range(6)]},
        format="json",
    )
    assert batch.status_code == 207
    ranks_match_scores(account)
    assert LeadRank.objects.filter(account=account).count() == 7

    lead_id = created.json()["id"]
    assert api.put(f"{LEADS}/{lead_id}", {"country": "FR"}, format="json").json()["score"] == 0
    ranks_match_scores(account)
    assert LeadRank.objects.get(lead_id=lead_id).score == 0

    add_rule(account, name="french", field="country", value="FR", points=55)
    result = services.account_rescore(account_id=account.pk)
    assert result["changed"] == 4  # the three FR leads of the batch and the updated one
    ranks_match_scores(account)
    assert LeadRank.objects.get(lead_id=lead_id).score == 55

    assert api.delete(f"{LEADS}/{lead_id}").status_code == 204
    ids = [item["id"] for item in batch.json()["results"][:3]]
    assert api.delete(f"{LEADS}/batch", {"ids": ids}, format="json").status_code == 207
    ranks_match_scores(account)
    assert LeadRank.objects.filter(account=account).count() == 3


def test_deleting_an_account_leaves_no_rank_rows(account, other_account):
    LeadFactory.create_batch(3, account=account)
    LeadFactory.create_batch(2, account=other_account)
    Account.objects.filter(pk=account.pk).delete()
    assert LeadRank.objects.count() == 2
    ranks_match_scores(other_account)


def test_sort_by_score_reads_the_rank_and_pages_every_lead_once(api, account):
    for n in range(30):
        LeadFactory(account=account, email=f"s{n}@acme.test", country="DE" if n % 3 else "FR")
    add_rule(account, field="country", value="DE", points=40)
    services.account_rescore(account_id=account.pk)
    seen, url = [], f"{LEADS}?sort=-score&limit=7"
    while url:
        body = api.get(url).json()
        seen += [(lead["score"], lead["id"]) for lead in body["results"]]
        url = f"{LEADS}?sort=-score&limit=7&cursor={body['next_cursor']}" if body["has_more"] else None
    assert len(seen) == 30 == len({lead_id for _, lead_id in seen})
    assert seen == sorted(seen, reverse=True)
    assert [score for score, _ in seen].count(40) == 20


def test_a_recalculation_writes_one_lead_scored_event_per_changed_score_with_the_announced_payload(account):
    leads = [
        LeadFactory(account=account, email=f"e{n}@acme.test", country=c)
        for n, c in enumerate(["DE", "DE", "FR", "FR", "DE"])
    ]
    hook = WebhookSubscription.objects.create(
        account=account, url="https://hooks.example.com/x", event_types=["lead.scored"], secret="s" * 32
    )
    rule = add_rule(account, field="country", value="DE", points=25)
    Event.objects.filter(account=account).delete()

    result = services.account_rescore(account_id=account.pk)

    # Every lead's breakdown changes ([] -> [] for FR is no change; DE gains the rule).
    changed = {lead.pk for lead in leads if lead.country == "DE"}
    assert result["changed"] == len(changed) == 3
    events = list(Event.objects.filter(account=account, type="lead.scored").order_by("id"))
    assert sorted(e.lead_id for e in events) == sorted(changed)
    breakdown = [{"rule_id": rule.pk, "name": rule.name, "points": 25}]
    for event in events:
        assert event.data == {
            "lead_id": str(event.lead_id),
            "previous_score": 0,
            "score": 25,
            "score_breakdown": Lead.objects.get(pk=event.lead_id).score_breakdown,
        }
        assert event.data["score_breakdown"] == breakdown
    assert WebhookDelivery.objects.filter(subscription=hook).count() == 3
    for lead in Lead.objects.filter(pk__in=changed):
        assert (lead.score, lead.version, lead.scored_at is not None) == (25, 2, True)

    # A second run changes nothing and writes nothing.
    assert services.account_rescore(account_id=account.pk)["changed"] == 0
    assert Event.objects.filter(account=account, type="lead.scored").count() == 3


def test_a_breakdown_only_change_rewrites_the_lead_without_a_lead_scored_event(account):
    lead = LeadFactory(account=account, email="b@acme.test", country="DE")
    rule = add_rule(account, field="country", value="DE", points=25)
    services.account_rescore(account_id=account.pk)
    rule.name = "Germany"
    rule.save()
    Event.objects.filter(account=account).delete()
    assert services.account_rescore(account_id=account.pk)["changed"] == 1
    lead.refresh_from_db()
    assert lead.score_breakdown == [{"rule_id": rule.pk, "name": "Germany", "points": 25}]
    assert not Event.objects.filter(account=account, type="lead.scored").exists()


@pytest.mark.postgres
def test_no_index_of_the_lead_table_covers_a_column_a_rescoring_writes():
    """The rescoring UPDATE can only be heap-only (HOT) while none of score, score_breakdown,
    scored_at or version is in an index or index predicate of leads_lead."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'leads_lead'")
        indexes = cursor.fetchall()
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'leads_lead'")
        (options,) = cursor.fetchone()
    assert len(indexes) > 10
    for name, definition in indexes:
        for column in ("score", "score_breakdown", "scored_at", "version"):
            assert f"{column}" not in definition.replace("leads_lead", ""), (name, definition)
    assert any(option.startswith("fillfactor=") and int(option.split("=")[1]) < 100 for option in options or [])


def test_the_rank_triggers_come_back_after_a_table_rebuild_drops_them(account):
    """SQLite rebuilds a table to alter it and loses its triggers; `ensure_rank_triggers` (run after
    every migrate) puts them back and fills in missing rank rows."""
    drop = {
        "postgresql": "DROP TRIGGER leads_rank_insert ON leads_lead",
        "sqlite": "DROP TRIGGER leads_rank_insert",
    }[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(drop)
    lead = LeadFactory(account=account, email="late@acme.test")
    assert not LeadRank.objects.filter(lead_id=lead.pk).exists()
    ensure_rank_triggers(connection)
    assert LeadRank.objects.filter(lead_id=lead.pk).exists()
    LeadFactory(account=account, email="later@acme.test")
    ranks_match_scores(account)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_rescoring_chunk_and_a_lead_write_that_holds_its_row_do_not_deadlock():
    """Every lead write locks its row, then takes the account's feed lock to append its event. A
    rescoring chunk must take them in the same order (rows, then feed), or the two deadlock."""
    account = Account.objects.create(slug="deadlock", name="Deadlock")
    leads = [LeadFactory(account=account, email=f"x{n}@dl.test", country="DE") for n in range(20)]
    add_rule(account, field="country", value="DE", points=10)
    target = leads[5].pk
    row_locked = threading.Event()
    errors: dict[str, str] = {}

    def writer():
        try:
            with transaction.atomic():
                Lead.objects.select_for_update().get(pk=target)  # as lead_update: the row first
                row_locked.set()
                time.sleep(1.0)
                events_record(account=account, type=EventType.LEAD_UPDATED, items=[(target, {"x": 1})])
        except Exception as exc:
            errors["writer"] = repr(exc)
        finally:
            connection.close()

    def rescorer():
        row_locked.wait(10)
        time.sleep(0.2)  # the writer holds its row and sleeps; we start on the chunk
        try:
            services.account_rescore(account_id=account.pk)
        except Exception as exc:
            errors["rescorer"] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=rescorer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == {}
    assert Lead.objects.filter(account=account, score=10).count() == 20
    ranks_match_scores(account)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_recalculation_outside_a_transaction_runs_its_chunks_on_several_connections(settings, monkeypatch):
    """On PostgreSQL, outside a transaction, chunks run on LEADBASE_RESCORE_WORKERS connections; the
    result, the events and the job's progress are those of the one-by-one run."""
    from jobs.models import Job, JobStatus

    settings.LEADBASE_RESCORE_WORKERS = 3
    monkeypatch.setattr(services, "RECALCULATION_CHUNK", 7)
    account = Account.objects.create(slug="parallel", name="Parallel")
    for n in range(50):
        LeadFactory(account=account, email=f"p{n}@par.test", country="DE" if n % 5 else "FR")
    add_rule(account, field="country", value="DE", points=35)
    Event.objects.filter(account=account).delete()
    threads_seen: set[int] = set()
    original = services._rescore_chunk

    def spy(*args, **kwargs):
        threads_seen.add(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "_rescore_chunk", spy)
    job = services.recalculation_enqueue(account=account, actor=None)  # eager: already ran once
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
    Lead.objects.filter(account=account).update(score=0, score_breakdown=[])
    Event.objects.filter(account=account).delete()

    result = services.account_rescore(account_id=account.pk, job_id=job.pk)

    assert len(threads_seen) > 1
    assert result == {"leads": 50, "changed": 40, "rules": 1}
    assert Lead.objects.filter(account=account, score=35).count() == 40
    assert Event.objects.filter(account=account, type="lead.scored").count() == 40
    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == (JobStatus.SUCCEEDED, 50, 50)
    ranks_match_scores(account)
