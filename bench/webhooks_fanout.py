"""Webhook fan-out (issue 10): events delivered per second to a local receiver, beside plain POSTs.

In the account `bench-hooks`, with one subscription to every event type pointing at a local
receiver (a small `ThreadingHTTPServer` answering 200 to every POST, in a process of its own), each run:

1. creates `--events` leads through `POST /api/v1/leads/batch` (500 per call, in-process), which
   writes one `lead.created` event and one pending delivery per lead in the same transaction (the
   outbox); the usual enqueue of the delivery task is switched off so nothing is sent yet;
2. times `webhooks.services.deliver_due` draining them: one worker process, then (on the next
   batch of events) two worker processes at once, as two Celery workers would run it (leases with
   `FOR UPDATE SKIP LOCKED`), each delivery signed, POSTed over a new connection, logged as an
   attempt and marked delivered;
3. the floor: the same number of POSTs of a body of the same size with the same HTTP client
   (`webhooks.http.post`), one process, no database.

    python -m bench.webhooks_fanout --runs 5 --events 2000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .common import bench_account, default_database_url, ensure_database, lead_payload, new_run_id, span

SLUG = "bench-hooks"


class Receiver:
    """Answers 200 to every POST and counts them, in a process of its own: in the drainer's process its
    request handling (Python too) would take turns with the drainer for the GIL and be counted as delivery
    cost, in the 1-worker figure and in the floor alike."""

    def __init__(self) -> None:
        from django.db import connections

        context = multiprocessing.get_context("fork")
        counter = self._count = context.Value("q", 0)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with counter.get_lock():
                    counter.value += 1

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        connections.close_all()  # the child never queries: it must not share the parent's sockets either
        self.process = context.Process(target=self.server.serve_forever, daemon=True)
        self.process.start()

    @property
    def count(self) -> int:
        return self._count.value

    def close(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)
        self.server.server_close()


def _drain(_: int) -> int:
    from django.db import connection

    from webhooks.services import deliver_due

    connection.close()  # a fresh connection of this process's own
    done = 0
    while True:
        tried = deliver_due(limit=500)
        done += tried
        if not tried:
            return done


def drain(workers: int) -> float:
    from django.db import connection

    connection.close()  # never share the parent's socket with forked children
    started = time.perf_counter()
    if workers == 1:
        _drain(0)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_drain, range(workers))
    return time.perf_counter() - started


def run(database_url: str, *, runs: int = 5, events: int = 2000) -> list[str]:
    ensure_database(database_url)
    key = bench_account(database_url, SLUG)
    os.environ["LEADBASE_WEBHOOKS_ALLOW_PRIVATE"] = "true"
    os.environ["LEADBASE_WEBHOOKS_ALLOW_HTTP"] = "true"
    from .common import setup_django

    setup_django(database_url)
    from django.conf import settings
    from django.test import Client

    settings.LEADBASE_WEBHOOKS_ALLOW_PRIVATE = settings.LEADBASE_WEBHOOKS_ALLOW_HTTP = True  # the local receiver

    from accounts.models import Account
    from webhooks import http, services
    from webhooks.models import WebhookDelivery, WebhookSubscription

    services._kick_delivery = lambda: None  # deliveries wait in the outbox until drained below
    receiver = Receiver()
    account = Account.objects.get(slug=SLUG)
    WebhookSubscription.objects.filter(account=account).delete()
    services.subscription_create(account=account, actor=None, data={"url": receiver.url})
    client = Client(HTTP_X_API_KEY=key)
    rng = random.Random(11)

    def make_events() -> int:
        for start in range(0, events, 500):
            leads = [lead_payload(rng, i, new_run_id()) for i in range(start, min(events, start + 500))]
            response = client.post("/api/v1/leads/batch", {"leads": leads}, content_type="application/json")
            assert response.status_code == 207 and response.json()["summary"]["failed"] == 0
        return WebhookDelivery.objects.filter(subscription__account=account, status="pending").count()

    sample_body = b"x" * 1200  # about a lead.created payload
    rates: dict[str, list[float]] = {"1": [], "2": [], "floor": []}
    for _ in range(runs):
        for workers in (1, 2):
            pending = make_events()
            assert pending == events, pending
            before = receiver.count
            seconds = drain(workers)
            assert receiver.count - before == events, (receiver.count - before, events)
            assert not WebhookDelivery.objects.filter(subscription__account=account, status="pending").exists()
            rates[str(workers)].append(events / seconds)
        started = time.perf_counter()
        for _ in range(events):
            result = http.post(receiver.url, "127.0.0.1", sample_body, {"Content-Type": "application/json"}, 10)
            assert result.status == 200
        rates["floor"].append(events / (time.perf_counter() - started))
    receiver.close()
    return [
        f"{events:,} `lead.created` events per measurement, one subscription, receiver on loopback answering 200 "
        f"(a process of its own); {runs} runs, median (min–max) of events delivered per second.",
        "",
        "| path | events/s | vs floor |",
        "| --- | ---: | ---: |",
        f"| `deliver_due`, 1 worker process | {span(rates['1'], digits=0)} | {_ratio(rates['1'], rates['floor'])} |",
        f"| `deliver_due`, 2 worker processes | {span(rates['2'], digits=0)} | {_ratio(rates['2'], rates['floor'])} |",
        f"| floor: plain POSTs, same client, no database | {span(rates['floor'], digits=0)} | 100% |",
    ]


def _ratio(values: list[float], floor: list[float]) -> str:
    import statistics

    return f"{statistics.median(values) / statistics.median(floor):.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    print("\n".join(run(args.database_url, runs=args.runs, events=args.events)))


if __name__ == "__main__":
    main()
