from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ragllm.progress import progress_bar
from tenants.selectors import tenant_find, tenant_llm_enabled
from tenants.services.key_validation import tenant_llm_revalidate


class Command(BaseCommand):
    help = (
        "Re-validate stored model configurations with live test calls, mark each one valid or "
        "failed (with its error), and print a summary. Exits 1 if any failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", default=None, help="Only this tenant (id, email, name).")

    def handle(self, *args, tenant: str | None = None, **options) -> None:
        tenant_obj = None
        if tenant:
            tenant_obj = tenant_find(ref=tenant)
            if tenant_obj is None:
                raise CommandError(f"No tenant matches {tenant!r}.")
        configs = tenant_llm_enabled(tenant=tenant_obj)
        if not configs:
            self.stdout.write("No enabled model configurations to validate.")
            return
        failures: list[str] = []
        for config in progress_bar(configs, stream=self.stdout, label="configs"):
            attempt = tenant_llm_revalidate(config=config)
            if not attempt.ok:
                failures.append(f"{config.tenant.name}: {attempt.message}")
        for line in failures:
            self.stderr.write(self.style.ERROR(line))
        summary = f"{len(configs) - len(failures)} valid, {len(failures)} failed."
        if failures:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
