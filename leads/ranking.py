"""The database triggers that keep `leads_leadrank` equal to the leads' scores (see LeadRank).

PostgreSQL: statement-level triggers with transition tables, so a batch insert or a rescoring chunk
maintains the rank table with one set-based statement, not a trigger call per row; the foreign key
cascades deletes. SQLite (the embedded mode): row triggers, including one for deletes.

`ensure_rank_triggers` is idempotent. It runs in migration 0006 and again after every `migrate`
(leads.apps), because SQLite's schema editor rebuilds a table to alter it, dropping its triggers.
"""

from __future__ import annotations

# Lead table rewrites for HOT updates: a rescoring's new row version fits on the same page.
LEAD_FILLFACTOR = 75

# Once, in the migration: table storage and the cascade of lead deletes.
POSTGRES_TABLES = [
    f"ALTER TABLE leads_lead SET (fillfactor = {LEAD_FILLFACTOR})",
    """ALTER TABLE leads_leadrank ADD CONSTRAINT leads_leadrank_lead_fk
       FOREIGN KEY (lead_id) REFERENCES leads_lead (id) ON DELETE CASCADE""",
]

POSTGRES = [
    """CREATE OR REPLACE FUNCTION leads_rank_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO leads_leadrank (lead_id, account_id, score)
           SELECT id, account_id, score FROM inserted_leads
           ON CONFLICT (lead_id) DO UPDATE SET score = EXCLUDED.score;
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE FUNCTION leads_rank_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         -- = ANY(ARRAY(...)): the rank rows are found by primary key; the planner knows nothing of
         -- a transition table's size and would otherwise hash-join it against a scan of the table.
         UPDATE leads_leadrank r SET score = n.score
           FROM updated_leads n
          WHERE r.lead_id = ANY(ARRAY(SELECT id FROM updated_leads)) AND r.lead_id = n.id AND r.score <> n.score;
         RETURN NULL;
       END $$""",
    """CREATE OR REPLACE TRIGGER leads_rank_insert AFTER INSERT ON leads_lead
       REFERENCING NEW TABLE AS inserted_leads FOR EACH STATEMENT EXECUTE FUNCTION leads_rank_after_insert()""",
    """CREATE OR REPLACE TRIGGER leads_rank_update AFTER UPDATE ON leads_lead
       REFERENCING NEW TABLE AS updated_leads FOR EACH STATEMENT EXECUTE FUNCTION leads_rank_after_update()""",
]

SQLITE = [
    """CREATE TRIGGER IF NOT EXISTS leads_rank_insert AFTER INSERT ON leads_lead BEGIN
         INSERT OR REPLACE INTO leads_leadrank (lead_id, account_id, score) VALUES (NEW.id, NEW.account_id, NEW.score);
       END""",
    """CREATE TRIGGER IF NOT EXISTS leads_rank_update AFTER UPDATE OF score ON leads_lead
       WHEN NEW.score IS NOT OLD.score BEGIN
         UPDATE leads_leadrank SET score = NEW.score WHERE lead_id = NEW.id;
       END""",
    """CREATE TRIGGER IF NOT EXISTS leads_rank_delete AFTER DELETE ON leads_lead BEGIN
         DELETE FROM leads_leadrank WHERE lead_id = OLD.id;
       END""",
]

BACKFILL = """INSERT INTO leads_leadrank (lead_id, account_id, score)
    SELECT l.id, l.account_id, l.score FROM leads_lead l
    WHERE NOT EXISTS (SELECT 1 FROM leads_leadrank r WHERE r.lead_id = l.id)"""

DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS leads_rank_insert ON leads_lead",
        "DROP TRIGGER IF EXISTS leads_rank_update ON leads_lead",
        "DROP FUNCTION IF EXISTS leads_rank_after_insert()",
        "DROP FUNCTION IF EXISTS leads_rank_after_update()",
        "ALTER TABLE leads_leadrank DROP CONSTRAINT IF EXISTS leads_leadrank_lead_fk",
        "ALTER TABLE leads_lead RESET (fillfactor)",
    ],
    "sqlite": [
        "DROP TRIGGER IF EXISTS leads_rank_insert",
        "DROP TRIGGER IF EXISTS leads_rank_update",
        "DROP TRIGGER IF EXISTS leads_rank_delete",
    ],
}


def ensure_rank_triggers(connection) -> None:
    """Create (or re-create) the triggers and fill in rank rows of leads that lack one."""
    statements = {"postgresql": POSTGRES, "sqlite": SQLITE}.get(connection.vendor)
    if statements is None:
        raise NotImplementedError(f"LeadRank triggers are not written for {connection.vendor}")
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
        cursor.execute(BACKFILL)


def prepare_rank_tables(connection) -> None:
    """The migration's one-off table changes (PostgreSQL): fillfactor and the cascading foreign key."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for sql in POSTGRES_TABLES:
                cursor.execute(sql)


def drop_rank_triggers(connection) -> None:
    with connection.cursor() as cursor:
        for sql in DROP.get(connection.vendor, []):
            cursor.execute(sql)
