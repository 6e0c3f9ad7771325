"""PostgreSQL-only indexes: trigram GIN on UPPER(column) for `q` (Django's icontains compiles to
UPPER(col::text) LIKE UPPER(%s)), and a jsonb GIN on tags for `tag=` (@>) and `tags__in=` (?|).
SQLite has neither; the embedded mode scans, which is fine at its size."""

from django.db import migrations

SEARCH_COLUMNS = ("first_name", "last_name", "email", "company")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCH_COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS lead_{column}_trgm_idx ON leads_lead "
            f"USING gin (UPPER({column}::text) gin_trgm_ops)"
        )
    schema_editor.execute("CREATE INDEX IF NOT EXISTS lead_tags_gin_idx ON leads_lead USING gin (tags)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in SEARCH_COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS lead_{column}_trgm_idx")
    schema_editor.execute("DROP INDEX IF EXISTS lead_tags_gin_idx")


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
