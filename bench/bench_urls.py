"""The project's URLs plus bare reference views, for benchmark servers only (bench.bench_settings).

`/bench/bare` answers GET and POST with a fixed JSON body (the file named by `BENCH_BARE_BODY`,
written by the benchmark from a real `GET /api/v1/leads/{id}` response): the same bytes as the
API, through the same middleware, with no authentication, rate limit, database or serialization.
What the API costs on top of it is what `bench.http_load` reports.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urlpatterns


@cache
def _body() -> bytes:
    return Path(os.environ["BENCH_BARE_BODY"]).read_bytes()


@csrf_exempt
def bare(request) -> HttpResponse:
    return HttpResponse(_body(), content_type="application/json", status=201 if request.method == "POST" else 200)


urlpatterns = [path("bench/bare", bare), *project_urlpatterns]
