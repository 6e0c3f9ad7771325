"""Content negotiation for endpoints that answer with a file whatever the client accepts."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation


class FileContentNegotiation(BaseContentNegotiation):
    """A download's format comes from its own parameter, not from `Accept`: a client sending
    `Accept: text/csv` must get its file, not 406. Errors still render with the first renderer
    (problem+json)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
