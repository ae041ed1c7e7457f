from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tenants.actors import acting_as, command_actor
from tenants.models import APIToken
from tenants.selectors import token_prefix
from tenants.services.tokens import api_token_revoke


class Command(BaseCommand):
    help = (
        "Revoke API tokens or application keys, by id, prefix or the token itself. Every "
        "process refuses them from its next request on (others within a second)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tokens", nargs="+", help="Token ids, prefixes or whole tokens.")

    def handle(self, *args, tokens: list[str], **options) -> None:
        found: list[APIToken] = []
        for ref in tokens:
            token = _find(ref.strip())
            if token is None:
                raise CommandError(f"No token matches {ref[:16]!r} (an id, a prefix or a token).")
            found.append(token)
        revoked = 0
        with acting_as(command_actor("revoke_token")):
            for token in found:
                owner = token.tenant.name if token.tenant_id else "personal"
                if api_token_revoke(token=token):
                    revoked += 1
                    self.stdout.write(
                        f"Revoked {token.prefix} ({token.name or 'unnamed'}, {owner})."
                    )
                else:
                    self.stdout.write(
                        f"{token.prefix} ({token.name or 'unnamed'}) was already revoked."
                    )
        self.stdout.write(self.style.SUCCESS(f"{revoked} of {len(found)} token(s) revoked."))


def _find(ref: str) -> APIToken | None:
    tokens = APIToken.objects.select_related("tenant")
    if ref.isdigit() and len(ref) < 8:
        return tokens.filter(pk=int(ref)).first()
    prefix = token_prefix(ref) if ref.startswith("rgl_") else ref
    return tokens.filter(prefix=prefix).first() if prefix else None
