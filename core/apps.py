from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core plumbing"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import schema  # noqa: F401  registers OpenAPI extensions
        from .db import sqlite_use_real_variable_limit

        connection_created.connect(sqlite_use_real_variable_limit, dispatch_uid="core.sqlite_variable_limit")
