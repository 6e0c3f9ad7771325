"""The API's JSON parser: DRF's, refusing numbers the API could store but never send back.

A JSON integer past 64 bits parsed fine, was stored (a custom field, a scoring rule's value), and
then every response that held it failed with a 500: the JSON writer (orjson) stops at 64 bits. Such
a body is now a 400 `malformed_request` before any view runs (docs/security.md, "Input limits").
"""

from __future__ import annotations

import codecs

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

INT64_MAX = 2**63 - 1


def _bounded_int(text: str) -> int:
    value = int(text)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(f"integer {text[:30]}{'...' if len(text) > 30 else ''} is outside the 64-bit range")
    return value


class JSONParser(parsers.JSONParser):
    """DRF's strict JSON parser (no NaN/Infinity), with integers limited to 64 bits."""

    keeps_no_state = True  # one instance serves every request (core/api.py _components)

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            decoded_stream = codecs.getreader(encoding)(stream)
            return json.load(decoded_stream, parse_constant=json.strict_constant, parse_int=_bounded_int)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
