from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Plan, User
from accounts.services import account_create
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an account with an owner (the owner user is created if new)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--plan", default=Plan.FREE, choices=Plan.values)
        parser.add_argument("--owner", required=True, help="Owner's email.")
        parser.add_argument("--name", default=None)

    def handle(self, *args, slug, plan, owner, name, **options):
        email = owner.strip().lower()
        try:
            # One transaction: a refused account (slug taken) must not leave a new owner user behind.
            with transaction.atomic():
                user = User.objects.filter(email=email).first() or User.objects.create_user(email=email)
                account = account_create(slug=slug, name=name, plan=plan, owner=user)
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"Created account {account.slug} ({account.plan}) owned by {user.email}")
