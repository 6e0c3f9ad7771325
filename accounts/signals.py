"""Receivers that tell every process to look API keys up again when what they may do changes
(accounts/credentials.py): any save or delete of a key, of its creator's membership, of its account
or of its creator, whoever makes it (services, Django admin, shell)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from .credentials import credentials_changed, publishing
from .models import Account, ApiKey, Membership, User


def _prefixes(**filters) -> list[str]:
    return list(ApiKey.objects.filter(**filters).values_list("prefix", flat=True))


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="credentials_api_key")
def api_key_changed(sender, instance: ApiKey, created: bool = False, **kwargs) -> None:
    if not created:  # a new key is in nobody's cache
        credentials_changed([instance.prefix])


@receiver(pre_save, sender=Membership, dispatch_uid="credentials_membership_moved")
def membership_moving(sender, instance: Membership, raw: bool = False, **kwargs) -> None:
    # A membership moved to another user or account (Django admin allows it): the keys of the pair it
    # leaves must be looked up again too.
    if publishing() and not raw and instance.pk is not None:
        old = Membership.objects.filter(pk=instance.pk).values_list("account_id", "user_id").first()
        if old is not None and old != (instance.account_id, instance.user_id):
            credentials_changed(_prefixes(account_id=old[0], created_by_id=old[1]))


@receiver([post_save, post_delete], sender=Membership, dispatch_uid="credentials_membership")
def membership_changed(sender, instance: Membership, **kwargs) -> None:
    if publishing():
        credentials_changed(_prefixes(account_id=instance.account_id, created_by_id=instance.user_id))


@receiver(post_save, sender=Account, dispatch_uid="credentials_account")
def account_changed(sender, instance: Account, created: bool = False, **kwargs) -> None:
    # A deleted account's keys are deleted with it (their own post_delete).
    if publishing() and not created:
        credentials_changed(_prefixes(account_id=instance.pk))


@receiver(post_save, sender=User, dispatch_uid="credentials_user")
def user_changed(sender, instance: User, created: bool = False, update_fields=None, **kwargs) -> None:
    # A login only stamps last_login; a user with keys cannot be deleted (ApiKey.created_by is PROTECT).
    if publishing() and not created and set(update_fields or ()) != {"last_login"}:
        credentials_changed(_prefixes(created_by_id=instance.pk))
