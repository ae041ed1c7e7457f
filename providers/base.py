"""What every adapter is: a factory's model with its credentials and base URL, and the means
to send the requests its family describes.

An adapter is a description, without I/O: its family builds each request (`post()`), parses
each answer, and reads each stream event; the model kinds (providers.kinds) turn those into
flows that providers.runner performs, sync or async. Sending goes through `fetch()` / `open()`
(retries, guard, error mapping); a family whose exchange is more than one plain request
overrides `attempt()` (a signature per try, an access token, errors inside 2xx answers) or
`refine_error()` (a status the generic reading gets wrong).

A family module subclasses a kind, declares the `factories` it serves and their base URLs;
declaring `factories` on a class registers it (see providers.registry); intermediate classes
that declare none are not registered.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import httpx

from . import http
from .api_keys import Credentials
from .classify import ErrorContext
from .errors import (
    GenericProviderError,
    InvalidRequestError,
    ProviderError,
    UnreachableError,
)
from .factories import strip_name_suffix
from .netguard import NetworkPolicy, policy_for
from .registry import register
from .retry import RetryPolicy, with_retries
from .runner import Flow
from .tokens import encoding_for_model, num_tokens_from_string
from .types import ModelType

logger = logging.getLogger(__name__)


class BaseAdapter:
    """What every adapter is: a factory's model, its credentials and base URL, and the way to
    send a described request (sans I/O) through the runner."""

    model_type: ClassVar[ModelType]
    factories: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str | None] = None
    # Hosted factories' base URLs, when one class serves several factories.
    base_urls: ClassVar[Mapping[str, str]] = {}
    # Self-hosted servers that serve this API under /v1 of the address users usually type
    # (http://host:8000): /v1 is added when the given base URL lacks it.
    v1_factories: ClassVar[tuple[str, ...]] = ()
    # Fields a JSON credential must have; one error names every missing one.
    required_fields: ClassVar[tuple[str, ...]] = ()
    # True: this class serves its factories when the stored credential is a plain key, beside
    # the factory's registered class for its JSON fields (Tencent Hunyuan: a SecretId and
    # SecretKey sign the native API, a plain API key goes to its OpenAI-compatible endpoint).
    for_plain_key: ClassVar[bool] = False

    def __init_subclass__(cls, factories: Iterable[str] | None = None, **kwargs: Any) -> None:
        # `class OpenAIChat(OpenAIChatWire, ChatModel, factories=CHAT_FACTORIES): ...` declares
        # and registers the factories a class serves (so does a `factories` class attribute).
        super().__init_subclass__(**kwargs)
        if factories is not None:
            cls.factories = tuple(factories)
        if cls.__dict__.get("factories"):
            register(cls)

    def __init__(
        self,
        *,
        factory: str,
        model_name: str,
        credentials: Credentials | str | Mapping[str, Any] | None,
        base_url: str | None = None,
        guard: http.Guard | None = None,
        retry_policy: RetryPolicy | None = None,
        network: NetworkPolicy | None = None,
        **options: Any,
    ) -> None:
        if factory not in self.factories:
            raise ValueError(f"{type(self).__name__} does not serve factory {factory!r}")
        self.factory = factory
        self.model_name = model_name
        self.credentials = Credentials.parse(credentials)
        if self.required_fields:
            self.credentials.require(*self.required_fields, provider=factory, model=model_name)
        self.guard = guard
        # None: the factory's policy from the settings at each call (providers.netguard).
        self.network = network
        # None: read LLM_TIMEOUT_SECONDS / LLM_MAX_RETRIES / LLM_BASE_DELAY at each call.
        self.retry_policy = retry_policy
        self.options = options
        self.context = ErrorContext(factory, model_name, self.credentials.secrets())
        self.base_url = self.resolve_base_url(base_url)

    def resolve_base_url(self, given: str | None) -> str:
        """The user's base URL, else the factory's hosted one; without slash at the end."""
        url = (given or "").strip() or self.base_urls.get(self.factory) or self.default_base_url
        if not url:
            raise self.context.error(
                InvalidRequestError, f"{self.factory} needs a base URL and none was given"
            )
        url = url.rstrip("/")
        if self.factory in self.v1_factories and not url.endswith("/v1"):
            url += "/v1"
        return url

    @property
    def wire_model_name(self) -> str:
        """The model name the provider expects."""
        return strip_name_suffix(self.model_name)

    @property
    def encoding(self) -> str:
        return encoding_for_model(self.wire_model_name)

    def count_tokens(self, text: str | None) -> int:
        return num_tokens_from_string(text, self.encoding)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.factory}/{self.model_name} at {self.base_url} "
            f"{self.credentials!r}>"
        )

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    # --- describing requests (no I/O) ---

    def headers(self) -> dict[str, str]:
        """The authentication headers: `Authorization: Bearer <key>` unless a family says
        otherwise, and none without a key (keyless self-hosted servers)."""
        key = self.credentials.key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def post(self, path: str, **options: Any) -> http.Request:
        """A POST to `path` (relative to the base URL) with the family's headers."""
        return http.Request("POST", path, headers=self.headers(), **options)

    # --- sending them: flows for providers.runner ---

    @property
    def policy(self) -> RetryPolicy:
        return self.retry_policy or RetryPolicy.from_settings()

    def fetch(self, request: http.Request) -> Flow[http.ProviderResponse]:
        """`request` sent with retries: the fully read 2xx answer."""
        return self._retried(request, stream=False)

    def open(self, request: http.Request) -> Flow[httpx.Response]:
        """`request` sent with retries: the open 2xx response, for a stream to read."""
        return self._retried(request, stream=True)

    def _retried(self, request: http.Request, *, stream: bool) -> Flow[Any]:
        secrets = self.context.secrets
        attempt = functools.partial(self.attempt, request, stream=stream)
        return with_retries(attempt, policy=self.policy, secrets=secrets)

    def attempt(self, request: http.Request, *, stream: bool) -> Flow[Any]:
        """One try of `request`; what it raises is retried when retryable. Families that sign
        each try, add an access token or read errors out of 2xx answers override this."""
        return self.send(self.http_call(request), stream=stream)

    def http_call(self, request: http.Request, context: ErrorContext | None = None) -> http.Call:
        """`request` addressed (a relative URL joins the base URL), under the factory's network
        policy."""
        url = str(request.url)
        if not url.startswith(("http://", "https://")):
            request = replace(request, url=self.url(url))
        network = self.network or policy_for(self.factory)
        return http.Call(request, context or self.context, self.policy, self.guard, network)

    def send(self, call: http.Call, *, stream: bool) -> Flow[Any]:
        """One attempt of `call`; its error refined by refine_error()."""
        try:
            if stream:
                return (yield from http.open_once(call))
            return (yield from http.fetch_once(call))
        except ProviderError as error:
            refined = self.refine_error(error)
            if refined is error:
                raise
            raise refined from error

    def refine_error(self, error: ProviderError) -> ProviderError:
        """A family's better reading of an error status (Cohere's 498 is a bad key...)."""
        return error

    def expect_events(
        self, call: http.Call, response: httpx.Response, check: Callable[[Any], object]
    ) -> Flow[httpx.Response]:
        """`response` if it is an event stream. Providers that report errors in 2xx answers
        send a JSON body instead when a stream fails before it begins: `check(answer)` raises
        the error it holds."""
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response
        answer = yield from http.read_answer(call, response)
        check(answer)
        raise self.malformed("a stream answered without events")

    # --- reading answers ---

    def json_of(self, response: http.ProviderResponse) -> Any:
        """The JSON body of a 2xx response. The body of a failure is never repeated: one that
        does not even claim to be JSON is no model server's answer (a web page, a captive
        portal) and reads as such (see providers.http)."""
        try:
            return response.json()
        except ValueError:
            content_type = response.headers.get("content-type", "")
            logger.info(
                "%s: HTTP %s answer that is not JSON (%s, %d bytes, not shown)",
                self.factory,
                response.status_code,
                content_type or "no content type",
                len(response.content),
            )
            if "json" not in content_type.lower():
                raise self.context.unreachable(
                    UnreachableError, status=response.status_code
                ) from None
            raise self.context.error(
                GenericProviderError,
                f"HTTP {response.status_code} with a body that is not valid JSON",
                status=response.status_code,
            ) from None

    def malformed(self, what: str) -> ProviderError:
        return self.context.error(GenericProviderError, f"unexpected response: {what}")
