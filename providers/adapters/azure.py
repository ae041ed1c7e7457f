"""Azure OpenAI: the OpenAI wire protocol, addressed by deployment.

- URL: {endpoint}/openai/deployments/{deployment}/{chat/completions|embeddings}
  ?api-version={version}; the model name is the deployment name, and the body carries no
  `model`.
- Authentication: an `api-key: <key>` header.
- Credentials: a plain key, or RAGFlow's JSON {"api_key", "api_version"}; the version defaults
  to 2024-02-01.
- Streamed usage (`stream_options`) exists from api-version 2024-08-01-preview on; older
  versions reject the parameter, so the adapter leaves it out and the usage is estimated.
"""

from __future__ import annotations

from urllib.parse import quote

from ..kinds.chat import ChatModel, Image2TextModel
from .openai import OpenAIChatWire, OpenAIEmbedding, OpenAIWire

DEFAULT_API_VERSION = "2024-02-01"
STREAM_USAGE_SINCE = "2024-08-01"


class AzureWire(OpenAIWire):
    """Not registered."""

    base_urls = {}

    @property
    def api_version(self) -> str:
        return self.credentials.get("api_version") or DEFAULT_API_VERSION

    def headers(self) -> dict[str, str]:
        key = self.api_key
        return {"api-key": key} if key else {}

    def endpoint_path(self, endpoint: str) -> str:
        deployment = quote(self.wire_model_name, safe="")
        return f"openai/deployments/{deployment}/{endpoint}"

    def query_params(self) -> dict[str, str]:
        return {"api-version": self.api_version}

    def body_model(self) -> str | None:
        return None  # the deployment in the URL selects the model


class AzureChatWire(AzureWire, OpenAIChatWire):
    """Not registered."""

    def stream_usage_supported(self) -> bool:
        # Dated versions compare as strings: "2024-10-21" > "2024-08-01-preview" > "2024-06-01".
        return self.api_version >= STREAM_USAGE_SINCE


class AzureChat(AzureChatWire, ChatModel, factories=("Azure-OpenAI",)): ...


class AzureImage2Text(AzureChatWire, Image2TextModel, factories=("Azure-OpenAI",)): ...


class AzureEmbedding(AzureWire, OpenAIEmbedding, factories=("Azure-OpenAI",)): ...
