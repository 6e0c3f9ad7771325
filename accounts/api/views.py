"""Thin DRF views for /me, /account, /members, /api-keys, /oauth-apps and /me/authorized-apps."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from core.api import AccountScopedAPIView
from core.schema import errors, list_envelope
from leads.selectors import lead_queryset

from .. import selectors, services
from ..scopes import ADMIN, LEADS_READ, LEADS_WRITE
from .serializers import (
    AccountSerializer,
    AccountUpdateSerializer,
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuthorizedAppSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    MeSerializer,
    OAuthAppCreatedSerializer,
    OAuthAppCreateSerializer,
    OAuthAppSerializer,
)


def _list(items) -> dict:
    return {"results": items, "next_cursor": None, "has_more": False}


class MeView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ}

    @extend_schema(operation_id="me_retrieve", responses={200: MeSerializer, **errors()})
    def get(self, request):
        """Who am I: the user, the account, the role and the credential's scopes."""
        actor = self.actor
        key = actor.api_key
        return Response(
            {
                "user": {"id": actor.user.pk, "email": actor.user.email, "name": actor.user.name},
                "account": {
                    "id": actor.account.pk,
                    "slug": actor.account.slug,
                    "name": actor.account.name,
                    "plan": actor.account.plan,
                },
                "role": actor.role,
                "scopes": sorted(actor.scopes),
                "credential": {"type": actor.via, "id": key.pk if key else None, "prefix": key.prefix if key else None},
            }
        )


class AccountView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ, "PUT": ADMIN, "PATCH": ADMIN}

    def _body(self):
        return AccountSerializer(self.account, context={"lead_count": lead_queryset(account=self.account).count()}).data

    @extend_schema(operation_id="account_retrieve", responses={200: AccountSerializer, **errors()})
    def get(self, request):
        """The account: plan, limits and usage."""
        return Response(self._body())

    @extend_schema(
        operation_id="account_update",
        request=AccountUpdateSerializer,
        responses={200: AccountSerializer, **errors(400)},
    )
    def patch(self, request):
        """Rename the account (admin)."""
        serializer = AccountUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.account_update(account=self.account, name=serializer.validated_data["name"], actor=self.actor)
        return Response(self._body())


class MemberListView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ, "POST": ADMIN}

    @extend_schema(
        operation_id="members_list", responses={200: list_envelope(MembershipSerializer, "MembershipList"), **errors()}
    )
    def get(self, request):
        """List the account's members and their roles."""
        return Response(_list(MembershipSerializer(selectors.member_list(account=self.account), many=True).data))

    @extend_schema(
        operation_id="members_create",
        request=MembershipCreateSerializer,
        responses={201: MembershipSerializer, **errors(400, 409)},
    )
    def post(self, request):
        """Add a member by email (admin); only an owner can add an owner."""
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.member_add(account=self.account, actor=self.actor, **serializer.validated_data)
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ, "*": ADMIN}

    @extend_schema(operation_id="members_retrieve", responses={200: MembershipSerializer, **errors(404)})
    def get(self, request, membership_id: int):
        """One member."""
        return Response(
            MembershipSerializer(selectors.member_get(account=self.account, membership_id=membership_id)).data
        )

    @extend_schema(
        operation_id="members_update",
        request=MembershipUpdateSerializer,
        responses={200: MembershipSerializer, **errors(400, 404, 409)},
    )
    def patch(self, request, membership_id: int):
        """Change a member's role (admin); the last owner stays an owner."""
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.member_update(
            account=self.account, membership_id=membership_id, role=serializer.validated_data["role"], actor=self.actor
        )
        return Response(MembershipSerializer(membership).data)

    @extend_schema(
        operation_id="members_destroy", responses={204: OpenApiResponse(description="Removed"), **errors(404, 409)}
    )
    def delete(self, request, membership_id: int):
        """Remove a member (admin); the last owner cannot be removed."""
        services.member_remove(account=self.account, membership_id=membership_id, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyListView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(
        operation_id="api_keys_list", responses={200: list_envelope(ApiKeySerializer, "ApiKeyList"), **errors()}
    )
    def get(self, request):
        """List the account's API keys (prefixes only; the secret is never shown again)."""
        return Response(_list(ApiKeySerializer(selectors.api_key_list(account=self.account), many=True).data))

    @extend_schema(
        operation_id="api_keys_create",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, **errors(400)},
    )
    def post(self, request):
        """Create an API key; the response holds the full key, shown only this once."""
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, raw = services.api_key_create(
            account=self.account, created_by=self.actor.user, actor=self.actor, **serializer.validated_data
        )
        key.key = raw
        return Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(operation_id="api_keys_retrieve", responses={200: ApiKeySerializer, **errors(404)})
    def get(self, request, key_id: int):
        """One API key."""
        return Response(ApiKeySerializer(selectors.api_key_get(account=self.account, key_id=key_id)).data)

    @extend_schema(
        operation_id="api_keys_revoke", responses={204: OpenApiResponse(description="Revoked"), **errors(404)}
    )
    def delete(self, request, key_id: int):
        """Revoke an API key; it stops working at once."""
        services.api_key_revoke(account=self.account, key_id=key_id, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OAuthAppListView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(
        operation_id="oauth_apps_list", responses={200: list_envelope(OAuthAppSerializer, "OAuthAppList"), **errors()}
    )
    def get(self, request):
        """List the OAuth apps the account registered."""
        return Response(_list(OAuthAppSerializer(selectors.oauth_app_list(account=self.account), many=True).data))

    @extend_schema(
        operation_id="oauth_apps_create",
        request=OAuthAppCreateSerializer,
        responses={201: OAuthAppCreatedSerializer, **errors(400)},
    )
    def post(self, request):
        """Register an OAuth app (authorization code + PKCE); a confidential client's secret is shown only now."""
        serializer = OAuthAppCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        app, secret = services.oauth_app_create(account=self.account, actor=self.actor, **serializer.validated_data)
        app.client_secret = secret
        return Response(OAuthAppCreatedSerializer(app).data, status=status.HTTP_201_CREATED)


class OAuthAppDetailView(AccountScopedAPIView):
    required_scopes = {"*": ADMIN}

    @extend_schema(operation_id="oauth_apps_retrieve", responses={200: OAuthAppSerializer, **errors(404)})
    def get(self, request, app_id: int):
        """One OAuth app of the account."""
        return Response(OAuthAppSerializer(selectors.oauth_app_get(account=self.account, app_id=app_id)).data)

    @extend_schema(
        operation_id="oauth_apps_destroy", responses={204: OpenApiResponse(description="Deleted"), **errors(404)}
    )
    def delete(self, request, app_id: int):
        """Delete an OAuth app; every token issued to it stops working at once."""
        services.oauth_app_delete(account=self.account, app_id=app_id, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuthorizedAppListView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ}

    @extend_schema(
        operation_id="me_authorized_apps_list",
        responses={200: list_envelope(AuthorizedAppSerializer, "AuthorizedAppList"), **errors()},
    )
    def get(self, request):
        """The OAuth apps you authorised to act in this account."""
        authorizations = selectors.oauth_authorization_list(user=self.actor.user, account=self.account)
        return Response(_list(AuthorizedAppSerializer(authorizations, many=True).data))


class AuthorizedAppDetailView(AccountScopedAPIView):
    required_scopes = {"GET": LEADS_READ, "DELETE": LEADS_WRITE}

    @extend_schema(operation_id="me_authorized_apps_retrieve", responses={200: AuthorizedAppSerializer, **errors(404)})
    def get(self, request, app_id: int):
        """One app you authorised in this account."""
        authorization = selectors.oauth_authorization_get(
            user=self.actor.user, account=self.account, app_id=int(app_id)
        )
        return Response(AuthorizedAppSerializer(authorization).data)

    @extend_schema(
        operation_id="me_authorized_apps_revoke", responses={204: OpenApiResponse(description="Revoked"), **errors(404)}
    )
    def delete(self, request, app_id: int):
        """Revoke an app's access to this account: its access and refresh tokens stop working at once."""
        services.oauth_authorization_revoke(
            user=self.actor.user, app_id=int(app_id), account=self.account, actor=self.actor
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
