from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from providers.services import CatalogError, catalog_load
from ragllm.progress import progress_bar


class Command(BaseCommand):
    help = (
        "Load a RAGFlow-format llm_factories.json into the catalog (ours by default). "
        "Idempotent: adds new factories and models, updates changed ones, and marks the ones "
        "missing from the file invalid (never deletes)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            default=None,
            help=f"Catalog file (default: LLM_FACTORIES_FILE, {settings.LLM_FACTORIES_FILE}).",
        )

    def handle(self, *args, path: str | None = None, **options) -> None:
        path = path or settings.LLM_FACTORIES_FILE
        show = options["verbosity"] >= 1
        try:
            summary = catalog_load(
                path=path,
                progress=(
                    (lambda rows: progress_bar(rows, stream=self.stdout, label="factories"))
                    if show
                    else None
                ),
            )
        except CatalogError as exc:
            raise CommandError(f"Cannot load the catalog: {exc}") from exc
        for warning in summary.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        self.stdout.write(self.style.SUCCESS(summary.as_line()))
