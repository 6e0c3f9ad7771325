"""Scopes (§3): the same names for API keys and OAuth tokens, capped by the user's role."""

LEADS_READ = "leads:read"
LEADS_WRITE = "leads:write"
ADMIN = "admin"

ALL_SCOPES: dict[str, str] = {
    LEADS_READ: "Read leads, notes, activity and exports",
    LEADS_WRITE: "Create, update, tag, score and delete leads",
    ADMIN: "Manage API keys, webhooks, scoring rules, members and OAuth apps",
}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": frozenset(ALL_SCOPES),
    "admin": frozenset(ALL_SCOPES),
    "member": frozenset({LEADS_READ, LEADS_WRITE}),
}


def effective_scopes(granted: list[str] | set[str], role: str) -> frozenset[str]:
    """What a credential may do now: its granted scopes, never more than its user's current role."""
    return frozenset(granted) & ROLE_SCOPES.get(role, frozenset())
