"""Permission classes: an authenticated actor in an account, and scopes per HTTP method."""

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.scopes import ADMIN, LEADS_READ, LEADS_WRITE


class HasAccount(BasePermission):
    """The request is authenticated and acts in an account (fails closed)."""

    keeps_no_state = True  # one instance serves every request (core/api.py _components)

    def has_permission(self, request, view) -> bool:
        return getattr(request.auth, "account", None) is not None


class ScopePermission(BasePermission):
    """Checks the scope the view asks for: `view.required_scopes[method]` or read/write defaults.
    Keeps no state (one instance serves every request, core/api.py): a missing scope is refused here
    with its own message rather than through an attribute set on the instance."""

    keeps_no_state = True  # one instance serves every request (core/api.py _components)

    code = "insufficient_scope"
    message = "This credential lacks the scope this operation needs."

    def has_permission(self, request, view) -> bool:
        actor = request.auth
        if getattr(actor, "account", None) is None:
            return False  # DRF answers 401 (no credential) or 403
        scope = required_scope(view, request.method)
        if actor.has_scope(scope):
            return True
        raise PermissionDenied(f"This operation needs the '{scope}' scope.", code=self.code)


def required_scope(view, method: str) -> str:
    mapping = getattr(view, "required_scopes", None) or {}
    if method in mapping:
        return mapping[method]
    # HEAD is answered by the GET handler, so it needs what GET needs (not the "*" of the writes).
    if method == "HEAD" and "GET" in mapping:
        return mapping["GET"]
    if "*" in mapping:
        return mapping["*"]
    return LEADS_READ if method in SAFE_METHODS else LEADS_WRITE


__all__ = ["ADMIN", "LEADS_READ", "LEADS_WRITE", "HasAccount", "ScopePermission", "required_scope"]
