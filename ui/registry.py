"""Every UI action and its API twin (§4.11): UI URL name -> the API operation ids it performs.

Nothing a person can do in the UI is missing from the API: tests/test_ui_registry.py fails for a UI
route missing here and for an operation id the OpenAPI schema does not have.
"""

UI_API_TWINS: dict[str, tuple[str, ...]] = {
    "ui:home": ("leads_list",),  # redirects to the lead list
    "ui:account-switch": ("me_retrieve",),  # an API credential acts in one account; /me names it
    "ui:lead-list": ("leads_list",),
    "ui:lead-create": ("leads_create",),
    "ui:lead-bulk": ("leads_batch_update", "leads_batch_destroy"),
    "ui:lead-detail": ("leads_retrieve",),
    "ui:lead-edit": ("leads_retrieve", "leads_update"),
    "ui:lead-delete": ("leads_destroy",),
    "ui:api-key-list": ("api_keys_list", "api_keys_create"),
    "ui:api-key-revoke": ("api_keys_revoke",),
}
