"""Content negotiation: DRF's, with a shortcut for what nearly every API client sends, and one for
endpoints that answer with a file whatever the client accepts."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation

# Accept values that pick a JSON-first view's first renderer as DRF's negotiation would, parsed or not.
JSON_ACCEPTS = frozenset({"*/*", "application/json", "application/*"})


class FileContentNegotiation(BaseContentNegotiation):
    """A download's format comes from its own parameter, not from `Accept`: a client sending
    `Accept: text/csv` must get its file, not 406. Errors still render with the first renderer
    (problem+json)."""

    keeps_no_state = True  # one instance serves every request (core/api.py _components)

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class APIContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, minus parsing `Accept` on every request: no header, `*/*` or
    `application/json` on a view whose first renderer is JSON gives that renderer and
    `application/json` (what DRF answers too); anything else goes through DRF unchanged."""

    keeps_no_state = True  # one instance serves every request (core/api.py _components)

    def select_renderer(self, request, renderers, format_suffix=None):
        if not format_suffix and renderers and renderers[0].media_type == "application/json":
            accept = request.META.get("HTTP_ACCEPT") or "*/*"
            if accept in JSON_ACCEPTS:
                return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
