"""The account switcher in the navigation: the accounts of the user and the one in use."""


def ui(request) -> dict:
    actor = getattr(request, "ui_actor", None)
    if actor is None:
        return {}
    return {"ui_account": actor.account, "ui_role": actor.role, "ui_memberships": request.ui_memberships}
