"""What AWS-hosted providers (Bedrock) share: SigV4 signing, temporary credentials from STS
AssumeRole, and the event-stream framing of streamed answers.

- Every attempt is signed anew by botocore's SigV4Auth, so a retry never carries a stale
  X-Amz-Date; the URL signed is exactly the URL sent.
- AssumeRole (POST https://sts.{region}.amazonaws.com/, form-encoded, signed for "sts")
  answers XML credentials that expire; they are cached per (endpoint, access key, role) and
  replaced shortly before they do, one request at a time per key.
- application/vnd.amazon.eventstream: binary frames with headers and a CRC-checked payload;
  `:message-type` "event" frames carry `:event-type` and a JSON payload, "exception" frames
  an `:exception-type` (the same names as the x-amzn-ErrorType header).
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as AwsCredentials
from botocore.eventstream import EventStreamBuffer, ParserError

from .. import errors, http
from ..base import BaseAdapter
from ..classify import ErrorContext
from ..errors import MaxRetriesExceededError, ProviderError
from ..http import Request
from ..retry import with_retries
from ..runner import Exclusive, Flow

STS_URL = "https://sts.{region}.amazonaws.com"
ROLE_SESSION_NAME = "ragllm-bedrock"
# Temporary credentials are replaced this long before AWS says they expire.
CREDENTIALS_MARGIN = timedelta(minutes=5)

# Event-stream exception types, and the x-amzn-ErrorType values they mirror.
ERROR_TYPES: dict[str, type[ProviderError]] = {
    "throttlingexception": errors.RateLimitError,
    "accessdeniedexception": errors.AuthError,
    "unrecognizedclientexception": errors.AuthError,
    "validationexception": errors.InvalidRequestError,
    "resourcenotfoundexception": errors.ModelError,
    "modelerrorexception": errors.ModelError,
    "modelnotreadyexception": errors.ServerError,
    "serviceunavailableexception": errors.ServerError,
    "internalserverexception": errors.ServerError,
    "modelstreamerrorexception": errors.ServerError,
    "modeltimeoutexception": errors.ProviderTimeout,
    "servicequotaexceededexception": errors.QuotaExceededError,
}


def sigv4_headers(
    credentials: AwsCredentials,
    method: str,
    url: str,
    body: bytes,
    *,
    service: str,
    region: str,
    headers: Mapping[str, str],
) -> dict[str, str]:
    """The headers to send: `headers` plus X-Amz-Date, Authorization (and the session token),
    signed now by botocore. `url` must be exactly the URL sent, percent-encoding included."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, region).add_auth(request)
    return dict(request.headers.items())


# --- STS AssumeRole --------------------------------------------------------------------------


class AssumedRoles:
    """Temporary credentials per (STS endpoint, access key, role), shared by the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._cache: dict[tuple[str, str, str], tuple[AwsCredentials, datetime]] = {}

    def get(
        self,
        adapter: BaseAdapter,
        base: AwsCredentials,
        *,
        role_arn: str,
        region: str,
        sts_url: str | None = None,
    ) -> Flow[AwsCredentials]:
        """A flow: the temporary credentials of `role_arn`, assumed with `base` through the
        STS endpoint of `region` (or `sts_url`), cached until shortly before they expire."""
        sts_url = (sts_url or STS_URL.format(region=region)).rstrip("/")
        key = (sts_url, base.access_key, role_arn)
        cached = self._fresh(key)
        if cached is not None:
            return cached
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # One AssumeRole at a time per key: callers arriving meanwhile get its result.
        return (yield Exclusive(key_lock, lambda: self._assume(adapter, base, key, region)))

    def _assume(
        self, adapter: BaseAdapter, base: AwsCredentials, key: tuple[str, str, str], region: str
    ) -> Flow[AwsCredentials]:
        cached = self._fresh(key)
        if cached is not None:
            return cached
        credentials, expires = yield from _assume_role(adapter, base, key[0], key[2], region)
        self._cache[key] = (credentials, expires)
        return credentials

    def _fresh(self, key: tuple[str, str, str]) -> AwsCredentials | None:
        cached = self._cache.get(key)
        if cached is not None and datetime.now(UTC) < cached[1] - CREDENTIALS_MARGIN:
            return cached[0]
        return None

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


assumed_roles = AssumedRoles()

_STS_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


def _assume_role(
    adapter: BaseAdapter, base: AwsCredentials, sts_url: str, role_arn: str, region: str
) -> Flow[tuple[AwsCredentials, datetime]]:
    form = urlencode(
        {
            "Action": "AssumeRole",
            "Version": "2011-06-15",
            "RoleArn": role_arn,
            "RoleSessionName": ROLE_SESSION_NAME,
        }
    ).encode()
    url = sts_url + "/"
    form_headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    def attempt() -> Flow[http.ProviderResponse]:
        headers = sigv4_headers(
            base, "POST", url, form, service="sts", region=region, headers=form_headers
        )
        return http.fetch_once(
            adapter.http_call(Request("POST", url, headers=headers, content=form))
        )

    try:
        secrets = adapter.context.secrets
        response = yield from with_retries(attempt, policy=adapter.policy, secrets=secrets)
    except MaxRetriesExceededError:
        raise
    except ProviderError as error:
        raise adapter.context.error(
            type(error),
            f"could not assume {role_arn}: {error.detail}",
            status=error.status,
            provider_message=error.provider_message,
        ) from error
    try:
        # A TLS-protected answer from STS; expat refuses external entities.
        root = ElementTree.fromstring(response.content)  # noqa: S314
        found = root.find("sts:AssumeRoleResult/sts:Credentials", _STS_NS)
        values = {
            name: found.findtext(f"sts:{name}", namespaces=_STS_NS) if found is not None else None
            for name in ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
        }
        expires = datetime.fromisoformat(values["Expiration"] or "")
    except (ElementTree.ParseError, ValueError):
        raise adapter.malformed("STS AssumeRole answered without credentials") from None
    if not all(values.values()):
        raise adapter.malformed("STS AssumeRole answered without credentials")
    credentials = AwsCredentials(
        values["AccessKeyId"], values["SecretAccessKey"], values["SessionToken"]
    )
    return credentials, expires if expires.tzinfo else expires.replace(tzinfo=UTC)


# --- event-stream framing ----------------------------------------------------------------------


class EventFrames:
    """The events of an event-stream body, as bytes arrive: (event type, JSON payload)
    pairs; an exception or error frame raises the error it names."""

    def __init__(self, context: ErrorContext, malformed: Callable[[str], ProviderError]) -> None:
        self._context = context
        self._malformed = malformed
        self._buffer = EventStreamBuffer()  # checks both CRCs of every frame

    def feed(self, chunk: bytes) -> Iterator[tuple[str, Any]]:
        self._buffer.add_data(chunk)
        try:
            messages = list(self._buffer)
        except ParserError as exc:
            raise self._malformed(f"bad event-stream frame: {exc}") from None
        for message in messages:
            yield self._event(message.headers, message.payload)

    def _event(self, headers: Mapping[str, Any], payload: bytes) -> tuple[str, Any]:
        try:
            data = json.loads(payload) if payload else {}
        except ValueError:
            raise self._malformed("an event payload is not JSON") from None
        kind = headers.get(":message-type")
        if kind == "exception":
            raise typed_error(self._context, str(headers.get(":exception-type") or ""), data)
        if kind == "error":
            raise typed_error(
                self._context,
                str(headers.get(":error-code") or ""),
                {"message": headers.get(":error-message")},
            )
        return str(headers.get(":event-type") or ""), data


def typed_error(context: ErrorContext, name: str, data: Any) -> ProviderError:
    """The error an AWS exception name (ThrottlingException...) and its payload mean."""
    message = (data.get("message") or data.get("Message")) if isinstance(data, Mapping) else None
    cls = ERROR_TYPES.get(name.lower())
    if cls is None:
        return context.classify(None, {"message": message or name, "code": name})
    return context.error(cls, f"{name}: {message or 'no error message'}")
