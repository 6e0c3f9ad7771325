"""Normalization of lead input (§4.1): pure functions, no database."""

from __future__ import annotations

import re

import phonenumbers
import pycountry

_ALPHA2 = frozenset(c.alpha_2 for c in pycountry.countries)
_WS = re.compile(r"\s+")


def normalize_email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    return value or None


def normalize_country(value: str | None) -> str:
    """ISO 3166-1 alpha-2, upper-case. Raises ValueError for anything else."""
    if not value:
        return ""
    code = value.strip().upper()
    if code not in _ALPHA2:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. DE, US).")
    return code


def normalize_phone(value: str | None, country: str = "") -> str:
    """E.164 where the number parses (using the lead's country for national numbers), else trimmed."""
    if not value:
        return ""
    text = value.strip()
    try:
        parsed = phonenumbers.parse(text, country or None)
    except phonenumbers.NumberParseException:
        return text
    if phonenumbers.is_possible_number(parsed) and phonenumbers.is_valid_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return text


def normalize_tag(value: str) -> str:
    return _WS.sub(" ", value.strip().lower())


def normalize_tags(values: list[str]) -> list[str]:
    """Lower-cased, trimmed, unique, in first-seen order; empty tags dropped."""
    seen: dict[str, None] = {}
    for raw in values:
        tag = normalize_tag(raw)
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def normalize_text(value: str | None) -> str:
    return (value or "").strip()


def normalize_external_id(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None
