from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the admin console's superuser if it does not exist. The password comes from "
        "ADMIN_PASSWORD, or is generated and printed once. Username and email from "
        "ADMIN_USERNAME (default admin) and ADMIN_EMAIL (default admin@localhost)."
    )

    def handle(self, *args, **options) -> None:
        username = os.environ.get("ADMIN_USERNAME", "admin")
        email = os.environ.get("ADMIN_EMAIL", "admin@localhost")
        users = get_user_model().objects
        if users.filter(username=username).exists():
            self.stdout.write(f"Admin user {username!r} exists; password unchanged.")
            return
        password = os.environ.get("ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(18)
        users.create_superuser(username=username, email=email, password=password)
        self.stdout.write(self.style.SUCCESS(f"Created admin user {username!r}."))
        if generated:
            # Shown this once only; it is not stored anywhere in clear.
            self.stdout.write(
                self.style.WARNING(f"Generated admin password (shown once): {password}")
            )
