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
    "ui:lead-detail": ("leads_retrieve", "leads_activity_list"),
    "ui:lead-edit": ("leads_retrieve", "leads_update"),
    "ui:lead-delete": ("leads_destroy",),
    "ui:api-key-list": ("api_keys_list", "api_keys_create"),
    "ui:api-key-revoke": ("api_keys_revoke",),
    "ui:import-upload": ("leads_batch_create",),  # the upload is checked here; rows go in at the mapping step
    "ui:import-map": ("leads_batch_create",),  # every row through leads_batch_create, 500 per call
    "ui:import-report": ("leads_batch_create",),  # the 207 results of those calls, row by row
    "ui:export-create": ("exports_create",),
    "ui:job-detail": ("jobs_retrieve",),
    "ui:job-progress": ("jobs_retrieve",),
    "ui:job-download": ("jobs_download",),
    "ui:scoring-rule-list": ("scoring_rules_list", "scoring_rules_create", "jobs_retrieve"),
    "ui:scoring-rule-preview": ("scoring_rules_preview",),
    "ui:scoring-rule-edit": ("scoring_rules_retrieve", "scoring_rules_update"),
    "ui:scoring-rule-toggle": ("scoring_rules_update",),
    "ui:scoring-rule-delete": ("scoring_rules_retrieve", "scoring_rules_destroy"),
    # -- lead timeline and notes; webhooks, OAuth apps, members, plan & usage --
    "ui:lead-activity": ("leads_activity_list",),
    "ui:lead-note-create": ("leads_notes_create",),
    "ui:webhook-list": ("webhooks_list", "webhooks_create"),
    "ui:webhook-detail": ("webhooks_retrieve", "webhooks_update", "webhooks_deliveries_list"),
    "ui:webhook-delete": ("webhooks_destroy",),
    "ui:webhook-rotate-secret": ("webhooks_rotate_secret",),
    "ui:webhook-test": ("webhooks_test",),
    "ui:webhook-redeliver": ("webhooks_redeliver",),
    "ui:oauth-app-list": ("oauth_apps_list", "oauth_apps_create"),
    "ui:oauth-app-delete": ("oauth_apps_retrieve", "oauth_apps_destroy"),
    "ui:member-list": ("members_list", "members_create"),
    "ui:member-role": ("members_update",),
    "ui:member-remove": ("members_retrieve", "members_destroy"),
    "ui:account-usage": ("account_retrieve",),
    # -- privacy: erase a lead, the suppression list --
    "ui:lead-erase": ("leads_retrieve", "leads_erase"),  # the confirmation page shows the lead first
    "ui:suppression-list": ("suppressions_list", "suppressions_create"),
    "ui:suppression-lift": ("suppressions_retrieve", "suppressions_destroy"),
}
