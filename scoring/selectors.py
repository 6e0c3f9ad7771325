"""Reads of scoring rules, per account."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Account
from core.errors import NotFound

from .models import ScoringRule


def rule_list(*, account: Account) -> QuerySet[ScoringRule]:
    return ScoringRule.objects.for_account(account).order_by("id")


def active_rules(*, account: Account) -> list[ScoringRule]:
    return list(rule_list(account=account).filter(active=True))


def rule_get(*, account: Account, rule_id) -> ScoringRule:
    rule = rule_list(account=account).filter(pk=rule_id).first() if str(rule_id).isdigit() else None
    if rule is None:
        raise NotFound("No such scoring rule.")
    return rule
