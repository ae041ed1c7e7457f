"""/api/v1/tokens (application keys) and /api/v1/audit (the tenant's audit log).

Owners and admins manage every key of the tenant; normal members see, and may revoke, only
their own. A key's raw token is in the answer to its creation only; after that, its prefix
identifies it. Views parse, call one service or selector, and answer in the envelope.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.core.paginator import Paginator
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from ragllm.api import IsoDateTimeField, TenantAPIView, ok, parse
from ragllm.errors import NotFound, PermissionDenied
from ragllm.schema import named

from . import token_schema as schema
from .inputs import StrictSerializer, budget_field, limit_field
from .models import TOKEN_SCOPES, APIToken, QuotaWindow
from .selectors import api_token_of, api_tokens_of, audit_entries
from .services.audit import KINDS
from .services.tokens import (
    MAX_BIGINT,
    MAX_INT,
    MAX_MODELS,
    api_token_create,
    api_token_revoke,
    api_token_update,
)


class KeySettingsInput(StrictSerializer):
    name = serializers.CharField(max_length=128, required=False)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TOKEN_SCOPES),
        allow_empty=False,
        max_length=len(TOKEN_SCOPES),
        required=False,
        help_text="manage: the /api/v1 routes; invoke: the /v1 gateway. Default: both.",
    )
    models = serializers.ListField(
        child=serializers.CharField(max_length=300),
        max_length=MAX_MODELS,
        required=False,
        allow_null=True,
        help_text="Allowed models, `name@factory` or `*@factory`; empty or null: every model.",
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="In the future; null: never."
    )
    rpm = limit_field(MAX_INT, "Requests per minute; null: no limit.")
    tpm = limit_field(MAX_INT, "Tokens per minute; null: no limit.")
    token_quota = limit_field(MAX_BIGINT, "Tokens per quota window; null: none.")
    budget = budget_field()
    quota_window = serializers.ChoiceField(choices=QuotaWindow.values, required=False)


class KeyCreateInput(KeySettingsInput):
    name = serializers.CharField(max_length=128)


class KeyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="Identifies the key (`rgl_<prefix>_...`).")
    user = serializers.CharField(source="user.get_username", help_text="Who created it.")
    scopes = serializers.ListField(child=serializers.CharField())
    models = serializers.ListField(child=serializers.CharField(), source="allowed_models")
    expires_at = IsoDateTimeField(allow_null=True)
    rpm = serializers.IntegerField(allow_null=True)
    tpm = serializers.IntegerField(allow_null=True)
    token_quota = serializers.IntegerField(allow_null=True)
    budget = serializers.DecimalField(max_digits=14, decimal_places=4, allow_null=True)
    quota_window = serializers.CharField()
    created_at = IsoDateTimeField()
    last_used_at = IsoDateTimeField(allow_null=True)
    revoked_at = IsoDateTimeField(allow_null=True)


class KeyCreatedOutput(KeyOutput):
    token = serializers.CharField(help_text="The key itself: shown this once, never again.")


def _moment(name: str, value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parse_datetime(value) or (
            datetime.combine(parse_date(value), time()) if parse_date(value) else None
        )
    except ValueError:
        moment = None
    if moment is None or not 2000 <= moment.year <= 2999:
        raise serializers.ValidationError({name: "an ISO date or datetime from 2000 to 2999."})
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


class TokensView(TenantAPIView):
    @schema.tokens_list(data=named(KeyOutput, "APIKey")(many=True))
    def get(self, request):
        mine = None if self.ctx.can_write else request.user
        return ok(KeyOutput(api_tokens_of(tenant=self.tenant, user=mine), many=True).data)

    @schema.tokens_create(
        request=named(KeyCreateInput, "APIKeyCreateInput"),
        data=named(KeyCreatedOutput, "APIKeyCreated")(),
    )
    def post(self, request):
        data = parse(KeyCreateInput, request.data)
        token, raw = api_token_create(user=request.user, tenant=self.tenant, **data)
        token.token = raw
        return ok(KeyCreatedOutput(token).data, http_status=201)


class TokenView(TenantAPIView):
    # Members may revoke their own keys: DELETE is checked per key below.
    write_methods = frozenset({"POST", "PUT", "PATCH"})

    def _token(self, token_id: str) -> APIToken:
        mine = None if self.ctx.can_write else self.request.user
        number = int(token_id) if token_id.isascii() and token_id.isdigit() else 0
        token = None
        if 0 < number <= MAX_INT:
            token = api_token_of(tenant=self.tenant, token_id=number, user=mine)
        if token is None:
            raise NotFound("No such key in this tenant.")
        return token

    @schema.token_get(data=named(KeyOutput, "APIKey")())
    def get(self, request, token_id: str):
        return ok(KeyOutput(self._token(token_id)).data)

    @schema.token_update(
        request=named(KeySettingsInput, "APIKeyUpdateInput"), data=named(KeyOutput, "APIKey")()
    )
    def patch(self, request, token_id: str):
        data = parse(KeySettingsInput, request.data)
        token = api_token_update(token=self._token(token_id), **data)
        return ok(KeyOutput(token).data)

    @schema.token_revoke(data=named(KeyOutput, "APIKey")())
    def delete(self, request, token_id: str):
        token = self._token(token_id)
        if not self.ctx.can_write and token.user_id != request.user.pk:
            raise PermissionDenied("Only the tenant's owner or admins may revoke others' keys.")
        api_token_revoke(token=token)
        return ok(KeyOutput(token).data)


@extend_schema_serializer(component_name="AuditEntry")
class AuditEntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = IsoDateTimeField()
    kind = serializers.CharField()
    object = serializers.CharField()
    changes = serializers.JSONField(help_text="Field names and masked values, never a key.")
    actor = serializers.CharField(source="actor_label")
    actor_user_id = serializers.IntegerField(allow_null=True)
    actor_token_id = serializers.IntegerField(allow_null=True)
    source = serializers.CharField(help_text="api, admin, command or system.")
    client_address = serializers.CharField(allow_null=True)


class AuditPageOutput(serializers.Serializer):
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    entries = AuditEntryOutput(many=True)


class AuditView(TenantAPIView):
    class InputSerializer(serializers.Serializer):
        # An empty value (`?kind=`) means "not given", as for every optional parameter.
        kind = serializers.ChoiceField(
            choices=sorted({*KINDS, *(k.split(".")[0] for k in KINDS)}),
            required=False,
            allow_blank=True,
            help_text="A kind (`key.revoked`) or its subject (`key`).",
        )
        page = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
        page_size = serializers.IntegerField(min_value=1, max_value=200, default=50)

        def get_fields(self) -> dict[str, serializers.Field]:
            # `from` is a Python keyword: the bounds are added under their wire names here.
            bounds = {
                name: serializers.CharField(
                    required=False, allow_blank=True, max_length=64, help_text=text
                )
                for name, text in (
                    ("from", "Start (inclusive): an ISO date or datetime (UTC if no offset)."),
                    ("to", "End (exclusive): an ISO date or datetime (UTC if no offset)."),
                )
            }
            return {**bounds, **super().get_fields()}

        def validate(self, attrs: dict) -> dict:
            for name in ("from", "to"):
                attrs[name] = _moment(name, attrs.get(name) or "")
            return attrs

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if not self.ctx.can_write:
            raise PermissionDenied("Only the tenant's owner or admins may read the audit log.")

    @schema.audit_list(
        query=named(InputSerializer, "AuditQuery"), data=named(AuditPageOutput, "AuditPage")()
    )
    def get(self, request):
        query = parse(self.InputSerializer, request.query_params)
        entries = audit_entries(
            tenant=self.tenant,
            since=query.get("from"),
            until=query.get("to"),
            kind=query.get("kind", ""),
        )
        paginator = Paginator(entries, query["page_size"])
        page = paginator.get_page(query["page"]) if query["page"] <= paginator.num_pages else []
        result = {
            "total": paginator.count,
            "page": query["page"],
            "page_size": query["page_size"],
            "entries": list(page),
        }
        return ok(AuditPageOutput(result).data)
