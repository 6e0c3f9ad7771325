"""The suppression list (§4.12): the keyed email hash, and its reads.

What is stored is `HMAC-SHA256(key, "<account id>:<normalized email>")`, never the email:
- keyed, not a bare SHA-256, because the space of real email addresses is small enough to
  enumerate: with a plain hash anyone holding a database dump could test a list of addresses
  (or a leaked customer list) against it. Without the key the hashes reveal nothing.
- the account id is part of the message, so one email suppressed in two accounts gives two
  unrelated hashes and the lists cannot be joined across tenants.
- the key is `LEADBASE_SUPPRESSION_KEY` when that setting is set (recommended in production: it
  never needs to change), otherwise one derived from `SECRET_KEY`. In the derived case the keys of
  `SECRET_KEY_FALLBACKS` are checked too, so rotating `SECRET_KEY` the Django way keeps every entry
  working while the old key is listed as a fallback.
The normalization is the lead's own (`normalize_email`: trimmed, lower-cased), so whatever the
lead store treats as one email the suppression list treats as one email.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import QuerySet
from django.utils.crypto import salted_hmac

from accounts.models import Account
from core.errors import NotFound
from core.keyset import Page, paginate, parse_sort

from .models import Suppression
from .normalization import normalize_email

KEY_SALT = "leadbase.suppression.email.v1"
# Newest first; `id` breaks ties (parse_sort appends it).
SUPPRESSION_SORT = parse_sort(None, allowed={"created_at": False}, default="-created_at")


def _secrets() -> list[str]:
    """The current key first, then the ones still accepted for lookups."""
    dedicated = getattr(settings, "LEADBASE_SUPPRESSION_KEY", "")
    if dedicated:
        return [dedicated]
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _hash(account_id: int, email: str, secret: str) -> str:
    return salted_hmac(KEY_SALT, f"{account_id}:{email}", secret=secret, algorithm="sha256").hexdigest()


def email_hash(*, account: Account, email: str) -> str:
    """The hash a new suppression of `email` (any case or surrounding whitespace) is stored under."""
    normalized = normalize_email(email)
    if not normalized:
        raise ValueError("An email is required.")
    return _hash(account.pk, normalized, _secrets()[0])


def email_hash_candidates(*, account: Account, emails: Iterable[str]) -> dict[str, str]:
    """{hash: normalized email} for every key a stored entry may have been made with."""
    secrets_ = _secrets()
    out: dict[str, str] = {}
    for email in emails:
        normalized = normalize_email(email)
        if normalized:
            for secret in secrets_:
                out[_hash(account.pk, normalized, secret)] = normalized
    return out


def suppressed_emails(*, account: Account, emails: Iterable[str]) -> set[str]:
    """Which of these (normalized) emails the account has suppressed: one indexed query for any
    number of emails, none when there is no email to check."""
    candidates = email_hash_candidates(account=account, emails=emails)
    if not candidates:
        return set()
    hits = suppression_queryset(account=account).filter(email_hash__in=list(candidates))
    return {candidates[h] for h in hits.values_list("email_hash", flat=True)}


def suppression_queryset(*, account: Account) -> QuerySet[Suppression]:
    return Suppression.objects.for_account(account)


def suppression_page(*, account: Account, cursor: str | None, limit: int) -> Page:
    """One page of the account's suppressions, newest first, after `cursor` (InvalidCursor when it is
    tampered with or another list's). GET /suppressions and the UI's list both read through here, so a
    cursor from one front door works in the other; the creator comes along for the UI's column."""
    return paginate(
        suppression_queryset(account=account).select_related("created_by"),
        keys=SUPPRESSION_SORT,
        limit=limit,
        cursor=cursor,
        scope=f"suppressions:{account.pk}",
    )


def suppression_find(*, account: Account, email: str) -> Suppression | None:
    """The entry suppressing `email`, if any (under any accepted key)."""
    candidates = email_hash_candidates(account=account, emails=[email])
    return suppression_queryset(account=account).filter(email_hash__in=list(candidates)).first()


def suppression_get(*, account: Account, suppression_id) -> Suppression:
    """One of the account's suppressions, or NotFound (also for other accounts' and malformed ids)."""
    text = str(suppression_id)
    valid = text.isascii() and text.isdigit() and len(text) <= 18
    found = suppression_queryset(account=account).filter(pk=int(text)).first() if valid else None
    if found is None:
        raise NotFound("No such suppression.")
    return found
