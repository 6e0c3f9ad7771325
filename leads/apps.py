from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_rank_triggers(sender, using, **kwargs) -> None:
    """SQLite rebuilds a table to alter it, and the rebuild drops the table's triggers: put the
    LeadRank triggers back after every migrate (idempotent; a no-op where they exist)."""
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    connection = connections[using]
    applied = MigrationRecorder(connection).applied_migrations()
    if ("leads", "0006_lead_rank") in applied:
        from .ranking import ensure_rank_triggers

        ensure_rank_triggers(connection)


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        post_migrate.connect(_ensure_rank_triggers, sender=self, dispatch_uid="leads.ensure_rank_triggers")
