"""Settings for benchmark servers only: the project's settings with bench.bench_urls as URLconf.

Never used by the application; `bench.http_load` starts gunicorn with
`DJANGO_SETTINGS_MODULE=bench.bench_settings` so the bare reference views share the very server,
middleware and worker processes of the API they are measured beside.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
