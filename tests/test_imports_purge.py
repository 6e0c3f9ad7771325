"""Stored CSV imports (upload, meta, report) are deleted after LEADBASE_IMPORT_RETENTION_HOURS by the
daily `leads.purge_imports` task; younger ones stay."""

from __future__ import annotations

import datetime
import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from leads import imports
from leads.tasks import purge_imports

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_imports_older_than_the_retention_are_deleted_and_younger_ones_kept(account, settings):
    settings.LEADBASE_IMPORT_RETENTION_HOURS = 24
    old = imports.import_upload_store(account=account, raw=b"email\na@x.test\n", filename="old.csv")
    young = imports.import_upload_store(account=account, raw=b"email\nb@x.test\n", filename="young.csv")
    meta = f"imports/{account.pk}/{old}/meta.json"
    stale = {"filename": "old.csv", "uploaded_at": (timezone.now() - datetime.timedelta(hours=25)).isoformat()}
    default_storage.delete(meta)
    default_storage.save(meta, ContentFile(json.dumps(stale).encode()))

    assert purge_imports.delay().get() == 1

    assert not default_storage.exists(f"imports/{account.pk}/{old}/source.csv")
    assert not default_storage.exists(meta)
    assert default_storage.exists(f"imports/{account.pk}/{young}/source.csv")
    csv, _ = imports.import_upload_load(account=account, import_id=young)
    assert csv.headers == ["email"]
    assert imports.imports_purge() == 0


def test_purging_with_nothing_stored_does_nothing():
    assert imports.imports_purge() == 0
