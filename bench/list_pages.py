"""List benchmark (issue 10): `GET /api/v1/leads?limit=50`, first page against a page ~900,000 rows deep.

For each case (filters, `q`, every allowed sort in both directions), in the same run:

- **first page** and **deep page** (a cursor at depth D, D = 900,000 or 90% of the matching rows
  when fewer match), timed in-process through `django.test.Client` (the whole Django stack: every
  middleware, API-key authentication, the rate limiter on Redis, the strict filters, the keyset
  query, rendering; no socket) and through gunicorn (HTTP on loopback, one keep-alive session);
- the same query with **OFFSET D** in raw SQL (the query the ORM compiles for the same filters and
  ordering, executed by the same connection): what a page at that depth costs without a cursor;
- `EXPLAIN (ANALYZE, FORMAT JSON)` of the first and deep page queries: the scans used, whether any
  node reads leads_lead sequentially, and the database's own execution time.

The deep cursor is encoded with core.keyset from the row at depth D (found with OFFSET, untimed), and
checked: the API's deep page must start with the row at D + 1.

    python -m bench.list_pages --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field

import requests

from .common import bench_account, default_database_url, ensure_database, gunicorn, setup_django, span

DEPTH = 900_000
LIMIT = 50
# (label, query parameters). Filters chosen so each is common in practice and selective differently.
CASES: list[tuple[str, dict[str, str]]] = [
    ("default (-created_at)", {}),
    ("sort=-score", {"sort": "-score"}),
    ("status=new", {"status": "new"}),
    ("status=new, sort=-score", {"status": "new", "sort": "-score"}),
    ("score__gte=50", {"score__gte": "50"}),
    ("score__gte=50, sort=-score", {"score__gte": "50", "sort": "-score"}),
    ("tag=hot", {"tag": "hot"}),
    ("tag=hot, sort=-score", {"tag": "hot", "sort": "-score"}),
    ("q=tanaka", {"q": "tanaka"}),
    ("q=acme gmbh", {"q": "acme gmbh"}),
    ("sort=created_at", {"sort": "created_at"}),
    ("sort=updated_at", {"sort": "updated_at"}),
    ("sort=-updated_at", {"sort": "-updated_at"}),
    ("sort=score", {"sort": "score"}),
    ("sort=email", {"sort": "email"}),
    ("sort=-email", {"sort": "-email"}),
    ("sort=company", {"sort": "company"}),
    ("sort=-company", {"sort": "-company"}),
    ("sort=last_name", {"sort": "last_name"}),
    ("sort=-last_name", {"sort": "-last_name"}),
]
# Cases the target (deep / first <= 1.5x) is about.
TARGET_CASES = {"default (-created_at)", "sort=-score", "status=new", "status=new, sort=-score"}
TARGET_RATIO = 1.5
TARGET_P50_MS = 15.0


@dataclass
class CaseResult:
    label: str
    params: dict[str, str]
    matching: int = 0
    depth: int = 0
    cursor: str = ""
    first: list[float] = field(default_factory=list)  # per-run medians, seconds (in-process)
    deep: list[float] = field(default_factory=list)
    http_first: list[float] = field(default_factory=list)
    http_deep: list[float] = field(default_factory=list)
    offset: list[float] = field(default_factory=list)
    plans: dict[str, dict] = field(default_factory=dict)


def page_queryset(account, params: dict[str, str]):
    """The list's own queryset and sort keys for these parameters (as leads.selectors.lead_list builds them)."""
    from django.http import QueryDict

    from leads import selectors

    query = QueryDict(mutable=True)
    query.update(params)
    keys = selectors.lead_sort_keys(params.get("sort"))
    qs = selectors.lead_filter(account=account, params=query)
    if hasattr(selectors, "lead_sorted"):  # sorts that read their key from another table
        qs, keys = selectors.lead_sorted(qs, keys, account=account)
    return qs, keys


def prepare(case: CaseResult, account, depth: int) -> None:
    """Count the matching rows, pick the depth and encode the cursor of the row there."""
    from core.keyset import encode_cursor, order_by_expressions

    qs, keys = page_queryset(account, case.params)
    case.matching = qs.count()
    case.depth = max(0, min(depth, int(case.matching * 0.9), case.matching - LIMIT - 1))
    ordered = qs.order_by(*order_by_expressions(keys))
    if case.depth:
        row = ordered[case.depth - 1 : case.depth].get()
        case.cursor = encode_cursor(
            scope=f"leads:{account.pk}", keys=keys, row_values=[getattr(row, k.field) for k in keys]
        )


def offset_sql(account, params: dict[str, str], depth: int) -> tuple[str, list]:
    from core.keyset import order_by_expressions

    qs, keys = page_queryset(account, params)
    query = qs.order_by(*order_by_expressions(keys))[depth : depth + LIMIT + 1].query
    sql, sql_params = query.sql_with_params()
    return sql, list(sql_params)


def explain(account, params: dict[str, str], cursor: str | None) -> dict:
    """EXPLAIN (ANALYZE, FORMAT JSON) of the page query the list runs: scans, indexes, seq scans, time."""
    from django.db import connection

    from core.keyset import decode_cursor, keyset_filter, order_by_expressions

    qs, keys = page_queryset(account, params)
    if cursor:
        qs = keyset_filter(qs, keys, decode_cursor(cursor, scope=f"leads:{account.pk}", keys=keys))
    sql, sql_params = qs.order_by(*order_by_expressions(keys))[: LIMIT + 1].query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, sql_params)
        raw = cur.fetchone()[0]
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    nodes = _nodes(plan["Plan"])
    scans = _scans(nodes)
    return {
        "scans": scans,
        "seq_scan_leads": any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "leads_lead" for n in nodes),
        "sort_node": any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes),
        "ms": plan["Execution Time"],
    }


def write_path_plans(client) -> list[dict]:
    """EXPLAIN (ANALYZE) every SELECT on leads_lead a single create and a batch create of 500 run: the
    write path's lookups (identity, soft duplicates, read-back) must not scan the table either."""
    import random

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from .common import lead_payload, new_run_id

    rng = random.Random(3)
    out = []
    calls = {
        "POST /leads": lambda: client.post(
            "/api/v1/leads", lead_payload(rng, 0, new_run_id()), content_type="application/json"
        ),
        "POST /leads/batch (500)": lambda: client.post(
            "/api/v1/leads/batch",
            {"leads": [lead_payload(rng, i, new_run_id()) for i in range(500)]},
            content_type="application/json",
        ),
    }
    for name, call in calls.items():
        with CaptureQueriesContext(connection) as ctx:
            response = call()
        assert response.status_code in (201, 207), response.content[:300]
        for query in ctx.captured_queries:
            sql = query["sql"]
            if not sql.startswith("SELECT") or '"leads_lead"' not in sql:
                continue
            with connection.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
                raw = cur.fetchone()[0]
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            nodes = _nodes(plan["Plan"])
            out.append(
                {
                    "path": name,
                    "query": " ".join(sql.split())[:140],
                    "scans": _scans(nodes),
                    "seq_scan_leads": any(
                        n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "leads_lead" for n in nodes
                    ),
                    "ms": plan["Execution Time"],
                }
            )
    return out


def _nodes(root: dict) -> list[dict]:
    nodes = [root]
    for child in root.get("Plans", []):
        nodes += _nodes(child)
    return nodes


def _scans(nodes: list[dict]) -> list[str]:
    return [
        f"{n['Node Type']}"
        + (f" {n['Index Name']}" if n.get("Index Name") else "")
        + (f" on {n['Relation Name']}" if n.get("Relation Name") and not n.get("Index Name") else "")
        for n in nodes
        if "Scan" in n["Node Type"]
    ]


def timed(reps: int, fn, *args) -> float:
    """Median seconds of `reps` calls of fn(*args)."""
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def get_page(client, base: str, params: dict) -> None:
    """One list page, through django.test.Client (base "") or a requests session against gunicorn."""
    response = client.get(base + "/api/v1/leads", {**params, "limit": LIMIT})
    assert response.status_code == 200, response.content[:300]


def raw_query(connection, sql: str, params: list) -> None:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        cur.fetchall()


def run(database_url: str, *, slug: str = "bench", runs: int = 5, reps: int = 15, depth: int = DEPTH) -> list[str]:
    """Measure every case; returns the markdown section (tables and findings)."""
    ensure_database(database_url)
    key = bench_account(database_url, slug)
    setup_django(database_url)
    from django.db import connection
    from django.test import Client

    from accounts.models import Account
    from core import ratelimit

    ratelimit.reset_limiter()
    account = Account.objects.get(slug=slug)
    client = Client(HTTP_X_API_KEY=key)
    cases = [CaseResult(label, params) for label, params in CASES]
    for case in cases:
        prepare(case, account, depth)
        # The cursor is right: the API's deep page starts with the row after depth D.
        if case.cursor:
            response = client.get("/api/v1/leads", {**case.params, "limit": LIMIT, "cursor": case.cursor})
            assert response.status_code == 200, response.content[:300]
            qs, keys = page_queryset(account, case.params)
            from core.keyset import order_by_expressions

            expected = qs.order_by(*order_by_expressions(keys))[case.depth : case.depth + 1].get()
            assert response.json()["results"][0]["id"] == str(expected.pk), case.label
        case.plans["first"] = explain(account, case.params, None)
        if case.cursor:
            case.plans["deep"] = explain(account, case.params, case.cursor)

    with gunicorn(database_url, workers=2) as base:
        session = requests.Session()
        session.headers["X-API-Key"] = key
        for case in cases:  # warm both paths (connections, caches, the database's buffers)
            for _ in range(3):
                get_page(session, base, case.params)
                get_page(client, "", case.params)
        for _ in range(runs):
            for case in cases:
                deep = {**case.params, "cursor": case.cursor} if case.cursor else case.params
                case.first.append(timed(reps, get_page, client, "", case.params))
                case.deep.append(timed(reps, get_page, client, "", deep))
                case.http_first.append(timed(reps, get_page, session, base, case.params))
                case.http_deep.append(timed(reps, get_page, session, base, deep))
                if case.label in TARGET_CASES:  # seconds each: the contrast, not worth it for every case
                    sql, sql_params = offset_sql(account, case.params, case.depth)
                    case.offset.append(timed(1, raw_query, connection, sql, sql_params))
    writes = write_path_plans(client)
    return report(cases, runs, reps, writes)


def report(cases: list[CaseResult], runs: int, reps: int, writes: list[dict]) -> list[str]:
    ms = 1000
    lines = [
        f"Per case: {runs} runs, each the median of {reps} requests; figures are the median of the runs "
        "(min–max of the runs), in ms. In-process = `django.test.Client` (all of Django, no socket); "
        "HTTP = through gunicorn (2 sync workers) on loopback. OFFSET = the same query with `OFFSET depth` "
        "in raw SQL (database time only; once per run, for the target cases).",
        "",
        "| case | matching | depth | first page (in-process) | deep page (in-process) | deep / first "
        "| first page (HTTP) | deep page (HTTP) | OFFSET at depth (SQL) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cases:
        ratio = statistics.median(c.deep) / statistics.median(c.first)
        mark = ""
        if c.label in TARGET_CASES:
            mark = " ✓" if ratio <= TARGET_RATIO else " ✗"
        lines.append(
            f"| {c.label} | {c.matching:,} | {c.depth:,} | {span(c.first, ms)} | {span(c.deep, ms)} | "
            f"{ratio:.2f}×{mark} | {span(c.http_first, ms)} | {span(c.http_deep, ms)} | "
            f"{span(c.offset, ms) if c.offset else '—'} |"
        )
    lines += [
        "",
        "EXPLAIN (ANALYZE, FORMAT JSON) of each page query (database execution time in ms):",
        "",
        "| case | first page: scans | ms | deep page: scans | ms | seq scan of leads_lead | sort node |",
        "| --- | --- | ---: | --- | ---: | --- | --- |",
    ]
    for c in cases:
        first, deep = c.plans["first"], c.plans.get("deep", {"scans": [], "ms": 0.0})
        seq = first["seq_scan_leads"] or deep.get("seq_scan_leads", False)
        sort = first["sort_node"] or deep.get("sort_node", False)
        lines.append(
            f"| {c.label} | {', '.join(first['scans'])} | {first['ms']:.2f} | {', '.join(deep['scans'])} | "
            f"{deep['ms']:.2f} | {'**yes**' if seq else 'no'} | {'yes' if sort else 'no'} |"
        )
    lines += [
        "",
        "EXPLAIN (ANALYZE) of every SELECT on leads_lead in the write path (one create, one batch of 500):",
        "",
        "| path | query | scans | ms | seq scan of leads_lead |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for w in writes:
        query = w["query"].replace("|", "\\|")
        lines.append(
            f"| {w['path']} | `{query}…` | {', '.join(w['scans'])} | {w['ms']:.2f} | "
            f"{'**yes**' if w['seq_scan_leads'] else 'no'} |"
        )
    default = next(c for c in cases if c.label == "default (-created_at)")
    p50 = statistics.median(default.first) * ms
    worst = max(statistics.median(c.first) for c in cases) * ms
    lines += [
        "",
        f"- Targets: deep / first ≤ {TARGET_RATIO}× for the cases marked ✓/✗; list page of 50 under "
        f"{TARGET_P50_MS:.0f} ms server time: default first page {p50:.1f} ms in-process "
        f"({'met' if p50 < TARGET_P50_MS else '**missed**'}); slowest case's first page {worst:.1f} ms.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=default_database_url())
    parser.add_argument("--account", default="bench")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--depth", type=int, default=DEPTH)
    args = parser.parse_args()
    print("\n".join(run(args.database_url, slug=args.account, runs=args.runs, reps=args.reps, depth=args.depth)))


if __name__ == "__main__":
    main()
