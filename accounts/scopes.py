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


# OAuth tokens act in one account. The account chosen on the consent screen is recorded as one more
# scope, `account:<id>`, beside the granted ones: it travels with the grant, the access token and
# every rotated refresh token without a change to django-oauth-toolkit's models. Clients never
# request it; the consent screen adds it (accounts/oauth_server.py).
ACCOUNT_SCOPE_PREFIX = "account:"


def account_scope(account_id: int) -> str:
    return f"{ACCOUNT_SCOPE_PREFIX}{int(account_id)}"


def is_account_scope(scope: str) -> bool:
    return scope.startswith(ACCOUNT_SCOPE_PREFIX)


def split_scopes(scopes) -> tuple[list[str], list[int | None]]:
    """(granted scopes, account ids) of an OAuth scope list or space-separated string.
    A malformed `account:` scope yields None, so callers can refuse it."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    granted: list[str] = []
    accounts: list[int | None] = []
    for scope in scopes or ():
        if is_account_scope(scope):
            raw = scope[len(ACCOUNT_SCOPE_PREFIX) :]
            accounts.append(int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None)
        elif scope:
            granted.append(scope)
    return granted, accounts
