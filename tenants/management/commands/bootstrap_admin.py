from __future__ import annotations

import os
import secrets
import time
import urllib.error
import urllib.request

from axes.utils import reset as axes_reset
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

RESET_HINT = "make admin-password  (or: python manage.py bootstrap_admin --reset-password)"


def wait_until_up(url: str, *, timeout: float) -> bool:
    """True once `url` answers at all (any HTTP status below 500) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own http URL)
                return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def box(lines: list[str]) -> str:
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


class Command(BaseCommand):
    help = (
        "Create the admin console's superuser if it does not exist, or with --reset-password "
        "give it a new password (and lift any login lockout). The password comes from "
        "ADMIN_PASSWORD, or is generated and printed once. Username and email from "
        "ADMIN_USERNAME (default admin) and ADMIN_EMAIL (default admin@localhost)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Set a new password for the existing admin user and print it once.",
        )
        parser.add_argument(
            "--wait-for",
            metavar="BASE_URL",
            help="Print the login box only once the server at BASE_URL answers (`make run` uses "
            "it so that the password is the last thing on the console, not buried under "
            "start-up lines).",
        )
        parser.add_argument("--wait-timeout", type=float, default=120.0)

    def handle(
        self,
        *args,
        reset_password: bool,
        wait_for: str | None,
        wait_timeout: float,
        **options,
    ) -> None:
        username = os.environ.get("ADMIN_USERNAME", "admin")
        email = os.environ.get("ADMIN_EMAIL", "admin@localhost")
        users = get_user_model().objects
        user = users.filter(username=username).first()
        password = os.environ.get("ADMIN_PASSWORD", "") or secrets.token_urlsafe(18)
        shown = not os.environ.get("ADMIN_PASSWORD")
        if user is None:
            users.create_superuser(username=username, email=email, password=password)
            status = "created"
        elif reset_password:
            user.set_password(password)
            user.save(update_fields=["password"])
            axes_reset(username=username)  # a locked-out admin can log in again at once
            status = "reset"
        else:
            status = "exists"

        lines = []
        if wait_for:
            base = wait_for.rstrip("/")
            if not wait_until_up(f"{base}/admin/login/", timeout=wait_timeout):
                # Still print the box: a password generated above is shown nowhere else.
                lines += [f"{base} did not answer within {wait_timeout:.0f} s: see the log."]
            lines += [f"Admin console: {base}/admin/", f"API docs:      {base}/api/docs/", ""]
        lines.append(f"Admin user: {username}")
        if status == "exists":
            lines += [
                "Password:   unchanged (set when the user was created)",
                f"Forgot it?  {RESET_HINT}",
            ]
        elif shown:
            verb = "Created" if status == "created" else "New password for"
            lines[-1] = f"{verb} admin user: {username}"
            lines += [f"Password:   {password}", "(shown once, not stored in clear: copy it now)"]
        else:
            lines += ["Password:   the one in ADMIN_PASSWORD"]
        self.stdout.write(box(lines))
        self.stdout.flush()
