"""RAGFlow's web app, replayed: the requests its model-settings page sends, in order, with the
bodies it builds, and every response field it reads checked for presence, type and value.

The page (web/src/pages/user-setting/setting-model and its hooks) loads five resources, then:
add a key, add a self-hosted model, choose default models, disable a model, delete a factory.
After each change it re-fetches what it re-fetches in the app. Every answer must be HTTP 200
with a JSON body carrying `code`, `message` and `data`: the app's request wrapper throws on any
other status before reading the body.
"""

import pytest

from tests.ragflow_client import RAGFlowClient, body, token_for

ZHIPU_KEY = "zhipu-key-0000000000000001"


class Page:
    """The model-settings page: what it requests, and what it reads from each answer."""

    def __init__(self, client: RAGFlowClient) -> None:
        self.client = client

    def call(self, method: str, route: str, data=None) -> dict:
        if method == "get":
            answer = body(self.client.get(route, data))
        else:
            answer = body(self.client.post(route, data))
        assert set(answer) == {"code", "message", "data"}, (route, answer)
        assert isinstance(answer["code"], int) and isinstance(answer["message"], str)
        return answer

    def ok(self, method: str, route: str, data=None):
        answer = self.call(method, route, data)
        assert answer["code"] == 0 and answer["message"] == "success", (route, answer)
        return answer["data"]

    # --- the five resources, with every field the page reads ---

    def tenant_info(self) -> dict:
        info = self.ok("get", "user/tenant_info")
        for name in ("tenant_id", "name", "llm_id", "embd_id", "img2txt_id", "asr_id"):
            assert isinstance(info[name], str), name
        for name in ("rerank_id", "tts_id"):
            assert info[name] is None or isinstance(info[name], str), name
        parsers = [pair.split(":") for pair in info["parser_ids"].split(",")]
        assert all(len(pair) == 2 and all(pair) for pair in parsers)
        assert ["naive", "General"] in parsers
        assert info["role"] == "owner"
        return info

    def my_llms(self) -> dict:
        data = self.ok("get", "llm/my_llms")
        assert isinstance(data, dict)
        for group in data.values():
            assert isinstance(group["tags"], str)  # split on "," when the card is expanded
            for item in group["llm"]:
                assert isinstance(item["name"], str) and isinstance(item["type"], str)
                assert item["status"] in ("1", "0")  # the switch is on iff it is the string "1"
                assert isinstance(item["used_token"], int)
                assert isinstance(item["id"], int) and item["id"]  # the app's id cache
        return data

    def my_llms_details(self) -> dict:
        data = self.ok("get", "llm/my_llms", {"include_details": True})
        for group in data.values():
            for item in group["llm"]:
                assert isinstance(item["name"], str) and isinstance(item["type"], str)
                assert isinstance(item["api_base"], str)
                assert isinstance(item["max_tokens"], int)
                assert isinstance(item["is_tools"], bool)
        return data

    def factories(self) -> list:
        data = self.ok("get", "llm/factories")
        for factory in data:
            assert isinstance(factory["name"], str) and factory["name"]
            assert isinstance(factory["tags"], str) and isinstance(factory["logo"], str)
        return data

    def models(self) -> dict:
        data = self.ok("get", "llm/list")
        for fid, items in data.items():
            for item in items:
                assert item["fid"] == fid and isinstance(item["llm_name"], str)
                assert isinstance(item["model_type"], str)
                assert isinstance(item["available"], bool)
                assert isinstance(item["tags"], str)
                assert item["status"] in ("1", "0")
                assert isinstance(item["is_tools"], bool)
                assert item["id"] is None or isinstance(item["id"], int)
        return data

    def load(self) -> dict:
        """Page load (and the re-fetch after set_api_key, add_llm and delete_factory)."""
        state = {
            "info": self.tenant_info(),
            "details": self.my_llms_details(),
            "added": self.my_llms(),
            "factories": self.factories(),
            "models": self.models(),
        }
        names = {f["name"] for f in state["factories"]}
        # Added factories are hidden from the "available" column by name: they must match.
        assert set(state["added"]) <= names
        state["available_factories"] = names - set(state["added"])
        return state


def model(state, fid, name):
    return next(m for m in state["models"][fid] if m["llm_name"] == name)


def option(state, model_type):
    """The values a default-model dropdown offers ("llm_name@fid" of available models)."""
    return {
        f"{m['llm_name']}@{fid}"
        for fid, items in state["models"].items()
        for m in items
        if m["available"] and model_type in m["model_type"]
    }


@pytest.fixture
def page(owner, tasks, catalog):
    return Page(RAGFlowClient(token_for(owner)))


def test_the_model_settings_page(page, tenant, fake_provider):
    # 1. Page load: a new tenant has nothing configured.
    state = page.load()
    assert state["added"] == {} and state["details"] == {}
    assert state["info"]["tenant_id"] == str(tenant.pk)
    assert {"ZHIPU-AI", "Ollama"} <= state["available_factories"]
    assert not any(m["available"] for m in state["models"]["ZHIPU-AI"])

    # 2. The API-key dialog of a hosted factory.
    key = {"llm_factory": "ZHIPU-AI", "api_key": ZHIPU_KEY, "base_url": fake_provider.url("/v1")}
    assert page.ok("post", "llm/set_api_key", {**key, "verify": False}) is True
    state = page.load()
    assert "ZHIPU-AI" in state["added"] and "ZHIPU-AI" not in state["available_factories"]
    zhipu = state["models"]["ZHIPU-AI"]
    assert zhipu and all(m["available"] and m["status"] == "1" and m["id"] for m in zhipu)
    ids = {item["name"]: item["id"] for item in state["added"]["ZHIPU-AI"]["llm"]}
    assert all(ids[m["llm_name"]] == m["id"] for m in zhipu)  # the app's id cache agrees
    assert "glm-4.7@ZHIPU-AI" in option(state, "chat")
    assert ZHIPU_KEY not in str(state)

    # 3. The add-model form of a self-hosted factory, as a tool-calling chat model.
    ollama = {
        "llm_factory": "Ollama",
        "llm_name": "llama3.2",
        "model_type": "chat",
        "api_base": fake_provider.url("/ollama"),
        "max_tokens": 8192,
        "is_tools": True,
        "verify": False,
    }
    assert page.ok("post", "llm/add_llm", ollama) is True
    state = page.load()
    detail = state["details"]["Ollama"]["llm"][0]
    assert (detail["name"], detail["type"], detail["is_tools"]) == ("llama3.2", "chat", True)
    assert (detail["api_base"], detail["max_tokens"]) == (ollama["api_base"], 8192)
    listed = model(state, "Ollama", "llama3.2")
    assert listed["is_tools"] is True and listed["available"] is True and listed["id"]

    # 4. Default models: one request per dropdown change, every field sent each time.
    info = state["info"]
    choice = {
        "tenant_id": info["tenant_id"],
        "name": info["name"],
        "llm_id": "glm-4.7@ZHIPU-AI",
        "embd_id": "embedding-3@ZHIPU-AI",
        "img2txt_id": "",
        "asr_id": "",
        "rerank_id": "",
        "tts_id": "",
        # Added by the newer app's request wrapper from its id cache: ignored.
        "tenant_llm_id": ids["glm-4.7"],
        "tenant_embd_id": ids["embedding-3"],
    }
    assert choice["llm_id"] in option(state, "chat")
    assert choice["embd_id"] in option(state, "embedding")
    assert page.ok("post", "user/set_tenant_info", choice) is True
    assert page.ok("post", "user/set_tenant_info", {**choice, "img2txt_id": "glm-4.5v@ZHIPU-AI"})
    info = page.tenant_info()
    assert (info["llm_id"], info["embd_id"], info["img2txt_id"]) == (
        "glm-4.7@ZHIPU-AI",
        "embedding-3@ZHIPU-AI",
        "glm-4.5v@ZHIPU-AI",
    )
    assert (info["asr_id"], info["rerank_id"], info["tts_id"]) == ("", "", "")

    # 5. The switch of a model that is not a default: off, then the re-fetch.
    off = {"llm_factory": "ZHIPU-AI", "llm_name": "glm-4.5", "status": 0}
    assert page.ok("post", "llm/enable_llm", off) is True
    added = page.my_llms()
    page.my_llms_details()
    page.factories()
    assert next(i for i in added["ZHIPU-AI"]["llm"] if i["name"] == "glm-4.5")["status"] == "0"
    state = page.load()
    disabled = model(state, "ZHIPU-AI", "glm-4.5")
    assert disabled["available"] is False and disabled["status"] == "0"
    assert "glm-4.5@ZHIPU-AI" not in option(state, "chat")
    # A default's switch is refused with a notice (code 102), the model stays on.
    refused = page.call("post", "llm/enable_llm", {**off, "llm_name": "glm-4.7"})
    assert refused["code"] == 102 and "default chat model" in refused["message"]
    assert model(page.load(), "ZHIPU-AI", "glm-4.7")["status"] == "1"

    # 6. The trash icon of a factory holding no default.
    assert page.ok("post", "llm/delete_factory", {"llm_factory": "Ollama"}) is True
    state = page.load()
    assert "Ollama" not in state["added"] and "Ollama" in state["available_factories"]
    assert "Ollama" not in state["models"]
    assert page.tenant_info()["llm_id"] == "glm-4.7@ZHIPU-AI"
