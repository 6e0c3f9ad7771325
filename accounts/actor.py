"""Who is acting: the user, the account they act in, and what their credential may do."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Account, ApiKey, User


@dataclass(frozen=True)
class Actor:
    user: User
    account: Account
    role: str
    scopes: frozenset[str]
    api_key: ApiKey | None = None
    ip: str | None = None
    via: str = "api_key"
    extra: dict = field(default_factory=dict, compare=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
