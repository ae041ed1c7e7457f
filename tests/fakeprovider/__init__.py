"""The fake provider server for tests.

Each provider family lives in its own module here with a `register(server)` function that
adds its routes; `start_fake_provider()` finds and registers every such module, so adding a
family is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil

from .server import FakeProviderServer, Form, RecordedRequest, Reply, UploadedFile

__all__ = [
    "FakeProviderServer",
    "Form",
    "RecordedRequest",
    "Reply",
    "UploadedFile",
    "start_fake_provider",
]


def _family_registrars():
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name == "server":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            yield register


def start_fake_provider(host: str = "127.0.0.1") -> FakeProviderServer:
    """A started server with every family's routes, listening on `host` (127.0.0.1, or ::1)."""
    return FakeProviderServer().start(families=_family_registrars(), host=host)
