"""Unit tests of leads/normalization.py (§4.1): pure functions, no database."""

from __future__ import annotations

import pytest

from leads.normalization import (
    normalize_country,
    normalize_email,
    normalize_external_id,
    normalize_phone,
    normalize_tags,
    normalize_text,
)

# --- email ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Jane.Doe@Example.COM", "jane.doe@example.com"),
        ("  jane@example.com  ", "jane@example.com"),
        ("\t JANE@EXAMPLE.ORG\n", "jane@example.org"),
        ("already@lower.io", "already@lower.io"),
    ],
)
def test_email_is_lower_cased_and_trimmed(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_empty_or_missing_email_becomes_none(raw):
    assert normalize_email(raw) is None


# --- phone ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 650-253-0000", "+16502530000"),
        ("+49 30 1234567", "+49301234567"),
        ("  +44 20 7946 0958  ", "+442079460958"),
    ],
)
def test_international_phone_is_normalized_to_e164_without_a_country_hint(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("(650) 253-0000", "US", "+16502530000"),
        ("030 1234567", "DE", "+49301234567"),
    ],
)
def test_national_phone_is_normalized_to_e164_with_the_country_hint(raw, country, expected):
    assert normalize_phone(raw, country) == expected


def test_international_phone_ignores_a_different_country_hint():
    assert normalize_phone("+44 20 7946 0958", "US") == "+442079460958"


def test_national_phone_without_a_country_hint_is_left_as_sent():
    assert normalize_phone("(650) 253-0000") == "(650) 253-0000"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("not a phone", "not a phone"),
        ("  12345  ", "12345"),
        ("+1 555", "+1 555"),
    ],
)
def test_unparseable_or_invalid_phone_is_kept_trimmed(raw, expected):
    assert normalize_phone(raw) == expected
    assert normalize_phone(raw, "US") == expected


@pytest.mark.parametrize("raw", [None, ""])
def test_empty_phone_becomes_empty_string(raw):
    assert normalize_phone(raw) == ""


# --- country -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [("de", "DE"), ("Us", "US"), (" gb ", "GB"), ("FR", "FR")])
def test_country_is_upper_cased_iso_alpha2(raw, expected):
    assert normalize_country(raw) == expected


@pytest.mark.parametrize("raw", [None, ""])
def test_empty_country_becomes_empty_string(raw):
    assert normalize_country(raw) == ""


@pytest.mark.parametrize("raw", ["XX", "zz", "Germany", "DEU", "U", "1"])
def test_invalid_country_raises_value_error(raw):
    with pytest.raises(ValueError, match="ISO 3166-1 alpha-2"):
        normalize_country(raw)


# --- tags ----------------------------------------------------------------------------------------


def test_tags_are_lower_cased_trimmed_unique_and_keep_first_seen_order():
    raw = ["VIP", " vip ", "Hot  Lead", "b", "hot lead", "A", "b"]
    assert normalize_tags(raw) == ["vip", "hot lead", "b", "a"]


def test_empty_tags_are_dropped():
    assert normalize_tags(["", "   ", "x"]) == ["x"]


def test_no_tags_normalize_to_an_empty_list():
    assert normalize_tags([]) == []


# --- other text fields ---------------------------------------------------------------------------


def test_text_is_trimmed_and_none_becomes_empty():
    assert normalize_text("  Acme Inc  ") == "Acme Inc"
    assert normalize_text(None) == ""


@pytest.mark.parametrize(("raw", "expected"), [(" crm-1 ", "crm-1"), ("", None), ("  ", None), (None, None)])
def test_external_id_is_trimmed_and_blank_becomes_none(raw, expected):
    assert normalize_external_id(raw) == expected
