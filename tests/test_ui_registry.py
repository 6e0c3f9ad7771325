"""Every UI action has an API twin (§4.11): the registry covers every UI route, and every operation
id it names exists in the OpenAPI schema."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from ui.registry import UI_API_TWINS


def _ui_url_names(patterns=None, namespace: str | None = None) -> set[str]:
    names: set[str] = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            names |= _ui_url_names(entry.url_patterns, entry.namespace or namespace)
        elif isinstance(entry, URLPattern) and namespace == "ui":
            assert entry.name, f"UI route {entry.pattern} has no name, so it cannot be mapped"
            names.add(f"ui:{entry.name}")
    return names


@pytest.fixture(scope="module")
def operation_ids() -> set[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op}


def test_every_ui_route_is_in_the_registry():
    names = _ui_url_names()
    assert names, "no UI routes found"
    assert names - UI_API_TWINS.keys() == set(), "UI routes without an API twin in ui/registry.py"


def test_the_registry_names_only_existing_ui_routes():
    assert UI_API_TWINS.keys() - _ui_url_names() == set()


def test_every_mapped_operation_id_exists_in_the_openapi_schema(operation_ids):
    for name, ops in UI_API_TWINS.items():
        assert ops, f"{name} maps to no operation"
        assert set(ops) <= operation_ids, f"{name}: unknown operation ids {set(ops) - operation_ids}"


def test_an_unmapped_ui_route_would_fail(monkeypatch):
    from ui import registry

    monkeypatch.delitem(registry.UI_API_TWINS, "ui:lead-list")
    assert "ui:lead-list" in _ui_url_names() - registry.UI_API_TWINS.keys()
