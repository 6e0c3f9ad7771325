"""Lead scores move their index to LeadRank, kept by triggers (leads/ranking.py), so that a rescoring
UPDATE of leads_lead is heap-only; leads_lead gets a fillfactor that leaves room for it."""

import django.db.models.deletion
from django.db import migrations, models

from leads.ranking import drop_rank_triggers, ensure_rank_triggers, prepare_rank_tables


def create_triggers(apps, schema_editor):
    prepare_rank_tables(schema_editor.connection)
    ensure_rank_triggers(schema_editor.connection)


def remove_triggers(apps, schema_editor):
    drop_rank_triggers(schema_editor.connection)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_oauthappregistration'),
        ('leads', '0005_suppression'),
    ]

    operations = [
        migrations.CreateModel(
            name='LeadRank',
            fields=[
                ('lead', models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, primary_key=True, related_name='rank', serialize=False, to='leads.lead')),
                ('score', models.SmallIntegerField(default=0)),
            ],
        ),
        migrations.RemoveIndex(
            model_name='lead',
            name='lead_acct_score_idx',
        ),
        migrations.AddField(
            model_name='leadrank',
            name='account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.account'),
        ),
        migrations.AddIndex(
            model_name='leadrank',
            index=models.Index(fields=['account', 'score', 'lead'], name='lead_rank_score_idx'),
        ),
        migrations.RunPython(create_triggers, remove_triggers),
    ]
