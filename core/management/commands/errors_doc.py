from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from core.docs import render_errors_markdown


class Command(BaseCommand):
    help = "Write docs/errors.md from the error catalogue (core/errors.py)."

    def handle(self, *args, **options):
        path = Path(settings.BASE_DIR) / "docs" / "errors.md"
        path.write_text(render_errors_markdown())
        self.stdout.write(f"Wrote {path.relative_to(settings.BASE_DIR)}")
