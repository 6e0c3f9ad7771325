"""factory_boy factories for the test suite."""

import factory

from accounts.models import Account, Membership, Role, User
from leads.models import Lead


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password("pw-for-tests-123")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    slug = factory.Sequence(lambda n: f"acct-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    plan = "pro"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    account = factory.SubFactory(AccountFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class LeadFactory(factory.django.DjangoModelFactory):
    """Writes rows directly (no service): for list/filter fixtures. Tests of writes use the services."""

    class Meta:
        model = Lead

    account = factory.SubFactory(AccountFactory)
    email = factory.Sequence(lambda n: f"lead{n}@example.org")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    company = factory.Faker("company")
