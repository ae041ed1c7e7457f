import subprocess
import sys
from pathlib import Path

import pytest

from providers import registry
from providers.adapters.azure import AzureChat
from providers.adapters.openai import NvidiaEmbedding, OpenAIChat, OpenAIEmbedding
from providers.api_keys import Credentials
from providers.errors import ModelError, UnsupportedModelError
from providers.kinds.chat import ChatModel
from providers.types import ModelType


def test_it_finds_the_adapter_for_a_pair():
    assert registry.get_adapter_class("chat", "OpenAI") is OpenAIChat
    assert registry.get_adapter_class(ModelType.CHAT, "Azure-OpenAI") is AzureChat
    assert registry.get_adapter_class("embedding", "NVIDIA") is NvidiaEmbedding
    assert registry.get_adapter_class("embedding", "Mistral") is OpenAIEmbedding


def test_it_accepts_ragflow_type_spellings():
    assert registry.get_adapter_class("vision", "OpenAI").model_type is ModelType.IMAGE2TEXT


def test_it_explains_an_unsupported_pair():
    with pytest.raises(UnsupportedModelError) as caught:
        registry.get_adapter_class("rerank", "DeepSeek")
    error = caught.value
    assert isinstance(error, ModelError)
    assert "'DeepSeek' has no rerank adapter" in str(error)
    assert "it serves: chat" in str(error)


def test_it_explains_an_unknown_factory_or_type():
    with pytest.raises(UnsupportedModelError, match="no adapter knows this factory"):
        registry.get_adapter_class("chat", "NoSuchFactory")
    with pytest.raises(UnsupportedModelError, match="unknown model type"):
        registry.get_adapter_class("telepathy", "OpenAI")


def test_it_lists_supported_factories():
    chat = registry.supported_factories("chat")
    assert chat == sorted(chat)
    for factory in ("OpenAI", "DeepSeek", "Ollama", "VLLM", "HuggingFace", "Azure-OpenAI"):
        assert factory in chat
    assert "Groq" in registry.supported_factories(ModelType.SPEECH2TEXT)
    assert "DeepSeek" not in registry.supported_factories("embedding")
    assert registry.supported_factories("tts") == [
        "Fish Audio",
        "GPUStack",
        "OpenAI",
        "OpenAI-API-Compatible",
        "Xinference",
    ]


def test_it_reports_coverage_by_factory():
    coverage = registry.coverage()
    assert coverage["OpenAI"] == {
        ModelType.CHAT,
        ModelType.IMAGE2TEXT,
        ModelType.EMBEDDING,
        ModelType.SPEECH2TEXT,
        ModelType.TTS,
    }
    assert coverage["DeepSeek"] == {ModelType.CHAT}
    assert coverage["Azure-OpenAI"] == {ModelType.CHAT, ModelType.IMAGE2TEXT, ModelType.EMBEDDING}


def test_it_builds_an_adapter_from_a_stored_key():
    adapter = registry.build_adapter(
        model_type="chat",
        factory="DeepSeek",
        model_name="deepseek-chat",
        api_key="sk-deepseek-123456",
    )
    assert isinstance(adapter, OpenAIChat)
    assert adapter.base_url == "https://api.deepseek.com/v1"
    assert adapter.credentials == Credentials.parse("sk-deepseek-123456")
    assert "sk-deepseek-123456" not in repr(adapter)


def test_it_refuses_a_second_adapter_for_a_taken_pair():
    with pytest.raises(registry.RegistrationError, match="both serve chat for factory 'OpenAI'"):

        class Impostor(ChatModel):
            factories = ("OpenAI",)


def test_it_does_not_register_classes_without_factories():
    class Intermediate(ChatModel):
        pass

    assert Intermediate not in registry._registry.values()


def test_lookups_work_before_anyone_imported_the_adapters():
    code = (
        "import sys\n"
        "from providers.registry import get_adapter_class\n"
        "assert 'providers.adapters' not in sys.modules\n"
        "print(get_adapter_class('chat', 'OpenAI').__name__)\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OpenAIChat"
