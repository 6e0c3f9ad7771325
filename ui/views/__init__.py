"""The web UI (§4.11): server-rendered pages on the same services and selectors as the API, one
module per area. Each view names its API twin in ui/registry.py; it validates input with the API's
input serializer and calls the same service, so the rules and the messages are the API's."""
