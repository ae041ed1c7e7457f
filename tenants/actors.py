"""Who is making a change, for the audit log: an `Actor`, known to the services from context.

The API and the admin get theirs from the request (`AuditActorMiddleware`: the user, the API
token it authenticated with, the client address; evaluated when a change is recorded, after
DRF has authenticated the request); commands set theirs with `acting_as(command_actor(...))`;
key validations carry their requester's to the worker in `KeyValidation.requested_via`.
Anything else records as "system".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

from rest_framework.throttling import BaseThrottle

from .models import AuditSource


@dataclass(frozen=True, slots=True)
class Actor:
    source: str = AuditSource.SYSTEM
    user_id: int | None = None
    token_id: int | None = None
    label: str = ""
    address: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Actor:
        data = data or {}
        names = ("source", "user_id", "token_id", "label", "address")
        return cls(**{name: data[name] for name in names if name in data})


SYSTEM = Actor()

_current: ContextVar[Actor | Callable[[], Actor] | None] = ContextVar("ragllm_actor", default=None)


def current_actor() -> Actor:
    value = _current.get()
    if value is None:
        return SYSTEM
    return value() if callable(value) else value


@contextmanager
def acting_as(actor: Actor | Callable[[], Actor]) -> Iterator[None]:
    token = _current.set(actor)
    try:
        yield
    finally:
        _current.reset(token)


def command_actor(command: str) -> Actor:
    return Actor(source=AuditSource.COMMAND, label=f"manage.py {command}")


def actor_from_request(request) -> Actor:
    """The user (and API token) a Django request is authenticated as, and where it came from."""
    match = getattr(request, "resolver_match", None)
    source = AuditSource.ADMIN if match and match.namespace == "admin" else AuditSource.API
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    label = user.get_username() if user_id is not None else ""
    address = _ip(BaseThrottle().get_ident(request))  # as tenants.auth.client_address
    token = getattr(request, "auth", None)
    token_id = getattr(token, "pk", None)
    if token_id is not None:
        label = f"{label} (key {token.prefix}…)"
    return Actor(source, user_id, token_id, label[:200], address)


def _ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


class AuditActorMiddleware:
    """Makes each request's actor the services' current actor (evaluated lazily)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        with acting_as(lambda: actor_from_request(request)):
            return self.get_response(request)
