from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from tenants.models import Tenant
from tenants.selectors import tenant_llm_count
from tenants.services.tenants import user_create_with_tenant
from tenants.services.tokens import api_token_issue


def _max_length(model, field_name: str) -> int:
    return model._meta.get_field(field_name).max_length


class Command(BaseCommand):
    help = (
        "Create a user and its tenant (owner membership and the system default model "
        "configurations). Running it again for the same email changes nothing but the name."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True, help="The owner's email (also its login).")
        parser.add_argument("--name", default=None, help="Tenant name (default: from the email).")
        parser.add_argument(
            "--issue-token",
            action="store_true",
            help="Issue a new API token even if the user exists (new users always get one).",
        )

    def handle(
        self, *args, email: str, name: str | None, issue_token: bool = False, **options
    ) -> None:
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"--email: {email!r} is not a valid email address") from exc
        # The email is also the username, whose column is shorter than an email may be.
        for option, value, longest in (
            ("--email", email, _max_length(get_user_model(), "username")),
            ("--name", name or "", _max_length(Tenant, "name")),
        ):
            if len(value) > longest:
                raise CommandError(f"{option} is longer than {longest} characters")
        user, tenant, created = user_create_with_tenant(email=email, name=name)
        verb = "Created" if created else "Found existing"
        configs = tenant_llm_count(tenant=tenant)
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} user {user.get_username()} with tenant {tenant.name!r} "
                f"(id {tenant.id}); {configs} model configuration(s)."
            )
        )
        if created or issue_token:
            _, raw = api_token_issue(user=user, name="create_tenant")
            self.stdout.write(f"API token (shown once, store it now): {raw}")
