"""Seed the demo account: owner demo@example.com / demo, ~200 leads, and an API key."""

import random

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Account, Membership, Role, User
from accounts.scopes import ALL_SCOPES
from accounts.services import account_create, api_key_create
from leads.models import LeadStatus
from leads.sample_data import CITIES, COMPANIES, COUNTRIES, FIRST, LAST, SOURCES, TAGS, TITLES
from leads.services import lead_create

DEMO_PASSWORD = "demo"  # noqa: S105  the documented demo login (§4.14), embedded mode only


class Command(BaseCommand):
    help = "Create (or refresh) the demo account with ~200 leads; prints the login and an API key."

    def add_arguments(self, parser):
        parser.add_argument("--leads", type=int, default=200)
        parser.add_argument("--quiet-key", action="store_true", help="Print only the API key.")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the server will listen (for the printed links)."
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Seed even in production (known password).",
        )

    def handle(
        self,
        *args,
        leads: int,
        quiet_key: bool,
        allow_production: bool = False,
        base_url: str = "http://127.0.0.1:8000",
        **options,
    ):
        if settings.PRODUCTION and not allow_production:
            raise CommandError("seed_demo creates a login with a known password; it refuses to run in production.")
        rng = random.Random(42)  # noqa: S311  # the same demo data every time
        with transaction.atomic():
            user = User.objects.filter(email="demo@example.com").first()
            if user is None:
                user = User.objects.create_superuser(
                    email="demo@example.com", password=DEMO_PASSWORD, name="Demo Owner"
                )
            account = Account.objects.filter(slug="demo").first()
            if account is None:
                account = account_create(slug="demo", name="Demo Inc.", plan="pro", owner=user)
            rep = User.objects.filter(email="rep@example.com").first() or User.objects.create_user(
                email="rep@example.com", password=DEMO_PASSWORD, name="Demo Rep"
            )
            Membership.objects.get_or_create(account=account, user=rep, defaults={"role": Role.MEMBER})
            owners = [user.pk, rep.pk, None]
            for i in range(leads):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                company = rng.choice(COMPANIES)
                country = rng.choice(COUNTRIES)
                data = {
                    "email": f"{first}.{last}.{i}@{company.split()[0].lower()}.example".lower(),
                    "first_name": first,
                    "last_name": last,
                    "company": company,
                    "job_title": rng.choice(TITLES),
                    "country": country,
                    "city": rng.choice(CITIES),
                    "source": rng.choice(SOURCES),
                    "status": rng.choice(LeadStatus.values),
                    "tags": rng.sample(TAGS, rng.randint(0, 3)),
                    "owner": rng.choice(owners),
                    "external_id": f"crm-{i:05d}",
                    "custom_fields": {
                        "employees": rng.choice([5, 20, 80, 250, 1200]),
                        "newsletter": rng.random() < 0.5,
                    },
                }
                lead_create(account=account, actor=None, data=data, on_duplicate="skip")
            _, raw_key = api_key_create(account=account, created_by=user, name="demo key", scopes=list(ALL_SCOPES))
        if quiet_key:
            self.stdout.write(raw_key)
            return
        self.stdout.write(self.style.SUCCESS(f"Demo account 'demo' ready with {leads} leads."))
        base = base_url.rstrip("/")
        self.stdout.write(f"Log in:                 {base}/login/  demo@example.com / demo")
        self.stdout.write(f"Django admin:           {base}/admin/")
        self.stdout.write(f"API docs:               {base}/api/v1/docs/")
        self.stdout.write(f"API key (shown once):   {raw_key}")
        self.stdout.write(f'Try:  curl -H "X-API-Key: {raw_key}" {base}/api/v1/leads?limit=5')
