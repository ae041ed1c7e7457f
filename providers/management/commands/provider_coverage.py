from django.core.management.base import BaseCommand

from providers.selectors import coverage_table


class Command(BaseCommand):
    help = (
        "Print the (factory x model type) pairs of the catalog as a Markdown table, each with "
        "the adapter module that serves it (the README's coverage table)."
    )

    def handle(self, *args, **options) -> None:
        self.stdout.write(coverage_table())
