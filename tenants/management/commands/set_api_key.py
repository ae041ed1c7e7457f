from __future__ import annotations

import getpass
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from ragllm.errors import ApplicationError
from tenants.actors import acting_as, command_actor
from tenants.models import ValidationState
from tenants.selectors import factory_get, tenant_find, tenant_llm_count
from tenants.services.key_requests import tenant_llm_request_key
from tenants.services.key_validation import key_validation_run


class Command(BaseCommand):
    help = (
        "Validate a factory's API key with live test calls and, if it works, save it for all "
        "the factory's catalog models of a tenant (as POST /api/v1/llm/set_api_key). The key "
        "comes from --key, or RAGLLM_API_KEY, or a prompt (keeps it out of shell history)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant id, owner email or name.")
        parser.add_argument("--factory", required=True, help="Factory name, e.g. OpenAI.")
        parser.add_argument("--key", default=None, help="The key ('-' reads it from stdin).")
        parser.add_argument("--base-url", default="", help="Override the factory's API base.")
        parser.add_argument(
            "--verify", action="store_true", help="Only check the key; save nothing."
        )

    def _read_key(self, given: str | None) -> str:
        if given == "-":
            return sys.stdin.readline().strip()
        if given:
            return given
        if os.environ.get("RAGLLM_API_KEY"):
            return os.environ["RAGLLM_API_KEY"]
        if sys.stdin.isatty():
            return getpass.getpass("API key: ").strip()
        raise CommandError("No key: pass --key, set RAGLLM_API_KEY, or run interactively.")

    def handle(self, *args, **options) -> None:
        with acting_as(command_actor("set_api_key")):
            self._handle(**options)

    def _handle(self, *, tenant: str, factory: str, key, base_url: str, verify: bool, **opts):
        tenant_obj = tenant_find(ref=tenant)
        if tenant_obj is None:
            raise CommandError(f"No tenant matches {tenant!r} (id, owner email or unique name).")
        factory_obj = factory_get(name=factory)
        if factory_obj is None:
            raise CommandError(f"Factory {factory!r} is not in the catalog.")
        try:
            # Run here, not on a worker: the command shows each model's verdict as it comes.
            validation = tenant_llm_request_key(
                tenant=tenant_obj,
                factory=factory_obj,
                api_key=self._read_key(key),
                fields={},
                base_url=base_url,
                verify=verify,
                enqueue=False,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Testing the key against {factory_obj.name}...")
        result = key_validation_run(validation_id=str(validation.pk))
        for attempt in result.attempts:
            mark = "ok" if attempt["ok"] else "FAILED"
            self.stdout.write(f"  {attempt['model_type']:<10} {attempt['model']}: {mark}")
        if result.state != ValidationState.SUCCEEDED:
            raise CommandError(result.message or "validation failed")
        if verify:
            self.stdout.write(self.style.SUCCESS("The key works (nothing was saved)."))
        else:
            count = tenant_llm_count(tenant=tenant_obj, factory=factory_obj)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Key saved for {count} {factory_obj.name} model(s) of {tenant_obj.name}."
                )
            )
