from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from ragllm.errors import ApplicationError
from tenants.actors import acting_as, command_actor
from tenants.models import TOKEN_SCOPES, QuotaWindow, Role, TenantMember
from tenants.selectors import tenant_find
from tenants.services.tokens import api_token_create


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class Command(BaseCommand):
    help = (
        "Create an application key bound to a tenant: its scopes, allowed models, expiry and "
        "limits. The key is printed once; only its prefix and a hash are stored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant id, owner email or name.")
        parser.add_argument("--name", required=True, help="What the key is for (1-128 chars).")
        parser.add_argument(
            "--user",
            default=None,
            help="Email or username of the member whose access the key uses (default: owner).",
        )
        parser.add_argument(
            "--scopes",
            default=",".join(TOKEN_SCOPES),
            help="Comma-separated: manage (the /api/v1 routes), invoke (the /v1 gateway).",
        )
        parser.add_argument(
            "--models", default="", help="Comma-separated name@factory or *@factory; default all."
        )
        parser.add_argument("--expires-at", default=None, help="ISO date and time, in the future.")
        parser.add_argument("--rpm", type=int, default=None, help="Requests per minute.")
        parser.add_argument("--tpm", type=int, default=None, help="Tokens per minute.")
        parser.add_argument("--token-quota", type=int, default=None, help="Tokens per window.")
        parser.add_argument("--budget", default=None, help="US dollars per window.")
        parser.add_argument(
            "--quota-window", default=QuotaWindow.MONTHLY, choices=QuotaWindow.values
        )

    def handle(self, *args, **options) -> None:
        tenant = tenant_find(ref=options["tenant"])
        if tenant is None:
            raise CommandError(
                f"No tenant matches {options['tenant']!r} (id, owner email or unique name)."
            )
        members = TenantMember.objects.select_related("user").filter(tenant=tenant)
        if options["user"]:
            ref = options["user"]
            member = (
                members.filter(user__email__iexact=ref).first()
                or members.filter(user__username=ref).first()
            )
            if member is None:
                raise CommandError(f"--user: {ref!r} is not a member of tenant {tenant.name!r}.")
        else:
            member = members.filter(role=Role.OWNER).first()
            if member is None:
                raise CommandError(f"Tenant {tenant.name!r} has no owner: pass --user.")
        expires_at = None
        if options["expires_at"]:
            expires_at = parse_datetime(options["expires_at"])
            if expires_at is None:
                raise CommandError("--expires-at: not an ISO date and time (2027-06-30T00:00Z).")
        try:
            with acting_as(command_actor("create_token")):
                token, raw = api_token_create(
                    user=member.user,
                    tenant=tenant,
                    name=options["name"],
                    scopes=_csv(options["scopes"]),
                    models=_csv(options["models"]),
                    expires_at=expires_at,
                    rpm=options["rpm"],
                    tpm=options["tpm"],
                    token_quota=options["token_quota"],
                    budget=options["budget"],
                    quota_window=options["quota_window"],
                )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Created key {token.name!r} (id {token.pk}, prefix {token.prefix}) for tenant "
                f"{tenant.name!r} as {member.user.get_username()}; scopes "
                f"{', '.join(token.scopes)}; models {', '.join(token.allowed_models) or 'all'}."
            )
        )
        self.stdout.write(f"API key (shown once, store it now): {raw}")
