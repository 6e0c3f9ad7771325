from django.core.management.base import BaseCommand, CommandError

from accounts.models import Account, Membership, Role
from accounts.services import api_key_create
from core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API key for an account and print only the key on stdout."

    def add_arguments(self, parser):
        parser.add_argument("--account", required=True, help="Account slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", default="leads:read,leads:write", help="Comma-separated scopes.")
        parser.add_argument("--user", default=None, help="Creator's email (default: the account's first owner).")

    def handle(self, *args, account, name, scopes, user, **options):
        acct = Account.objects.filter(slug=account).first()
        if acct is None:
            raise CommandError(f"No account {account!r}")
        memberships = Membership.objects.for_account(acct).select_related("user")
        membership = (
            memberships.filter(user__email=user.strip().lower()).first()
            if user
            else memberships.filter(role=Role.OWNER).order_by("created_at", "id").first()
        )
        if membership is None:
            raise CommandError("No such member in this account" if user else "The account has no owner")
        try:
            _, raw = api_key_create(
                account=acct,
                created_by=membership.user,
                name=name,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            )
        except ApplicationError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(raw)
