"""JSON rendering with orjson: the serializer's output, rendered faster than the stdlib."""

import orjson
from rest_framework.renderers import BaseRenderer


class JSONRenderer(BaseRenderer):
    keeps_no_state = True  # one instance serves every request (core/api.py _components)
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z, default=str)
