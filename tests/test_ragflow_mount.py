"""The RAGFlow-compatible routes (/v1/llm/..., /v1/user/...): RAGFlow's way of reading requests
and writing answers, over the same services as /api/v1, with the same access rules."""

import uuid

import pytest
from django.core.checks import run_checks
from django.urls import clear_url_caches, include, path

from providers.models import LLMFactory
from tenants.models import Role, TenantLLM, TenantMember
from tenants.selectors import tenant_owned_by
from tests.ragflow_client import RAGFlowClient, body, token_for

UNAUTHORIZED = {"code": 401, "message": "<Unauthorized '401: Unauthorized'>", "data": None}
SECRET = "sk-mount-test-secret-000000000042"


@pytest.fixture
def app(owner, catalog):
    """RAGFlow's web app, logged in as the owner."""
    return RAGFlowClient(token_for(owner))


@pytest.fixture
def gpt(tenant, catalog):
    return TenantLLM.objects.create(
        tenant=tenant,
        factory=LLMFactory.objects.get(name="OpenAI"),
        llm_name="gpt-4o",
        model_type="chat",
        api_key=SECRET,
    )


# --- Authentication ----------------------------------------------------------------------------


@pytest.mark.django_db
# RAGFlow's own cases (no header, a bad bare token) are in test_ragflow_llm_app.py.
@pytest.mark.parametrize("header", ["", "Bearer", "Bearer invalid_key_123", "rgl_x y"])
@pytest.mark.parametrize(
    ("method", "route"),
    [("get", "llm/factories"), ("get", "llm/list"), ("post", "llm/set_api_key")],
)
def test_it_answers_ragflows_401_body_without_a_valid_token(header, method, route):
    response = getattr(RAGFlowClient(header), method)(route)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_it_takes_the_token_with_or_without_the_bearer_scheme(owner, catalog):
    token = token_for(owner)
    for header in (token, f"Bearer {token}", f"bearer {token}"):
        assert body(RAGFlowClient(header).get("llm/my_llms"))["code"] == 0, header


def test_it_refuses_a_revoked_token(owner, catalog):
    from tenants.models import APIToken
    from tenants.services.tokens import api_token_revoke

    client = RAGFlowClient(token_for(owner))
    api_token_revoke(token=APIToken.objects.get(user=owner))
    assert client.get("llm/my_llms").json() == UNAUTHORIZED


def test_it_ignores_the_admin_session(client, superuser, catalog):
    client.force_login(superuser)
    assert client.get("/v1/llm/my_llms").status_code == 401


# --- Envelope, bodies and paths -----------------------------------------------------------------


def test_it_answers_errors_with_http_200_and_ragflows_code(app):
    missing = body(app.post("llm/set_api_key", {}))
    assert missing == {
        "code": 101,
        "message": "required argument are missing: llm_factory,api_key; ",
        "data": None,
    }
    unknown = body(
        app.post(
            "llm/add_llm", {"llm_factory": "NotAllowed", "llm_name": "x", "model_type": "chat"}
        )
    )
    assert unknown["code"] == 102
    assert unknown["message"] == "LLM factory NotAllowed is not allowed"
    tenant_args = body(app.post("user/set_tenant_info", {}))
    assert tenant_args["message"] == (
        "required argument are missing: tenant_id,asr_id,embd_id,img2txt_id,llm_id; "
    )


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
        (b"llm_factory", "text/plain"),
    ],
)
def test_a_body_that_is_not_an_object_reads_as_empty(app, data, content_type):
    answer = body(app.post_raw("llm/delete_llm", data, content_type))
    assert answer["code"] == 101
    assert answer["message"] == "required argument are missing: llm_factory,llm_name; "


def test_form_bodies_are_read_as_strings(app, gpt):
    answer = body(
        app.post_raw(
            "llm/enable_llm",
            "llm_factory=OpenAI&llm_name=gpt-4o&status=0",
            "application/x-www-form-urlencoded",
        )
    )
    assert answer == {"code": 0, "message": "success", "data": True}
    gpt.refresh_from_db()
    assert gpt.status == "0"


@pytest.mark.parametrize("route", ["llm/delete_llm", "llm/delete_llm/"])
def test_a_trailing_slash_is_optional_and_never_redirects(app, gpt, route):
    answer = body(app.post(route, {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}))
    assert answer["code"] == 0
    assert not TenantLLM.objects.filter(pk=gpt.pk).exists()
    assert body(app.get("llm/factories/"))["code"] == 0


def test_unknown_paths_get_ragflows_404(app):
    response = app.get("llm/no_such_route")
    assert response.status_code == 404
    assert response.json() == {
        "code": 404,
        "message": "Not Found: /v1/llm/no_such_route",
        "data": None,
        "error": "Not Found",
    }


def test_an_unexpected_error_is_code_100_with_a_reference_not_its_text(app, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("factories boom: postgres://user:secret@db")

    monkeypatch.setattr("tenants.api.factories_with_types", boom)
    answer = body(app.get("llm/factories"))
    assert answer["code"] == 100
    assert answer["message"].startswith("Internal error (reference ")
    assert "boom" not in answer["message"] and "secret" not in answer["message"]


# --- RAGFlow's semantics on the mount only -------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "data"),
    [
        ("llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt"}),
        ("llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt", "status": 0}),
        ("llm/delete_factory", {"llm_factory": "OpenAI"}),
        ("llm/delete_factory", {"llm_factory": "NoSuchFactory"}),
    ],
)
def test_changing_what_is_not_there_succeeds(app, route, data):
    assert body(app.post(route, data)) == {"code": 0, "message": "success", "data": True}


@pytest.mark.parametrize(
    ("status", "stored"),
    [(None, "1"), (0, "0"), (1, "1"), ("0", "0"), (False, "0"), (True, "1")],
)
def test_enable_llm_reads_the_status_as_ragflows_app_sends_it(app, gpt, status, stored):
    TenantLLM.objects.filter(pk=gpt.pk).update(status="0" if stored == "1" else "1")
    data = {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}
    if status is not None:
        data["status"] = status
    assert body(app.post("llm/enable_llm", data))["code"] == 0
    gpt.refresh_from_db()
    assert gpt.status == stored


def test_enable_llm_refuses_other_status_values(app, gpt):
    answer = body(
        app.post("llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": 2})
    )
    assert answer["code"] == 102 and "status" in answer["message"]
    gpt.refresh_from_db()
    assert gpt.status == "1"


def test_a_default_model_is_not_removed_from_under_the_tenant(app, tenant, gpt):
    # /api/v1 answers 409; the mount keeps the refusal, as code 102 with HTTP 200.
    tenant.llm_id = "gpt-4o@OpenAI"
    tenant.save()
    for route, data in [
        ("llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": 0}),
        ("llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}),
        ("llm/delete_factory", {"llm_factory": "OpenAI"}),
    ]:
        answer = body(app.post(route, data))
        assert answer["code"] == 102, route
        assert answer["message"] == (
            "gpt-4o@OpenAI is the tenant's default chat model; choose another default first."
        )
    gpt.refresh_from_db()
    assert gpt.status == "1"


def test_api_v1_keeps_its_honest_statuses(api_for, owner, catalog):
    api = api_for(owner)
    assert api.post("/api/v1/llm/delete_llm", {}).status_code == 400
    missing = api.post("/api/v1/llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt"})
    assert missing.status_code == 404
    assert api.post("/api/v1/llm/add_llm", {"llm_factory": "NoSuchCo"}).status_code == 400


# --- Who may do what ----------------------------------------------------------------------------


def test_a_normal_member_reads_but_cannot_write(member, tenant, gpt):
    # The member owns a tenant of its own (the default); it names the shared one by header.
    app = RAGFlowClient(token_for(member))
    app.headers["HTTP_X_TENANT_ID"] = str(tenant.pk)
    listed = body(app.get("llm/my_llms"))
    assert listed["data"]["OpenAI"]["llm"][0]["name"] == "gpt-4o"
    info = body(app.get("user/tenant_info"))["data"]
    assert info["tenant_id"] == str(tenant.pk) and info["role"] == Role.NORMAL
    for route, data in [
        ("llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}),
        ("llm/enable_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o", "status": 0}),
        ("llm/delete_factory", {"llm_factory": "OpenAI"}),
        ("llm/set_api_key", {"llm_factory": "OpenAI", "api_key": "sk-" + "x" * 30}),
        (
            "user/set_tenant_info",
            {
                "tenant_id": str(tenant.pk),
                "llm_id": "",
                "embd_id": "",
                "img2txt_id": "",
                "asr_id": "",
                "name": "Taken over",
            },
        ),
    ]:
        answer = body(app.post(route, data))
        assert answer["code"] == 403, route
    gpt.refresh_from_db()
    tenant.refresh_from_db()
    assert gpt.status == "1" and tenant.name != "Taken over"


def test_an_outsider_cannot_touch_another_tenant(outsider, tenant, gpt):
    app = RAGFlowClient(token_for(outsider))
    victim = {"HTTP_X_TENANT_ID": str(tenant.pk)}
    assert body(app.get("llm/my_llms", **victim)) == {
        "code": 102,
        "message": "Tenant not found!",
        "data": None,
    }
    # Without the header the outsider acts for its own tenant: "nothing to delete" succeeds
    # there, and the victim's configuration is untouched.
    assert (
        body(app.post("llm/delete_llm", {"llm_factory": "OpenAI", "llm_name": "gpt-4o"}))["code"]
        == 0
    )
    assert body(app.post("llm/delete_factory", {"llm_factory": "OpenAI"}, **victim))["code"] == 102
    assert TenantLLM.objects.filter(pk=gpt.pk, status="1").exists()
    # RAGFlow's set_tenant_info updates whichever tenant_id it is given (its IDOR): not here.
    before = tenant.name
    answer = body(
        app.post(
            "user/set_tenant_info",
            {
                "tenant_id": str(tenant.pk),
                "name": "pwned",
                "llm_id": "",
                "embd_id": "",
                "img2txt_id": "",
                "asr_id": "",
            },
        )
    )
    assert answer["code"] == 102 and answer["message"] == "Tenant not found!"
    tenant.refresh_from_db()
    assert tenant.name == before
    own = tenant_owned_by(user=outsider)
    assert body(app.get("user/tenant_info"))["data"]["tenant_id"] == str(own.pk)


def test_a_user_without_a_tenant_gets_tenant_not_found(owner, tenant, catalog):
    TenantMember.objects.filter(user=owner).delete()
    answer = body(RAGFlowClient(token_for(owner)).get("user/tenant_info"))
    assert answer["code"] == 102 and answer["message"] == "Tenant not found!"


# --- Where the routes live ----------------------------------------------------------------------


def _urlconf(*patterns):
    module = type(uuid)("test_urls_" + uuid.uuid4().hex)
    module.urlpatterns = list(patterns)
    return module


@pytest.fixture
def urlconf(settings):
    """Serve a URL configuration of the test's own (the module object itself)."""

    def use(prefix, *patterns):
        from tenants import ragflow

        settings.RAGFLOW_COMPAT_PREFIX = prefix
        settings.ROOT_URLCONF = _urlconf(
            *patterns, path("", include((ragflow.patterns(prefix), "ragflow")))
        )
        clear_url_caches()

    yield use
    clear_url_caches()


def _errors():
    return [m for m in run_checks(tags=["urls"]) if m.id.startswith("ragllm.")]


def test_the_shipped_routes_pass_the_start_up_check():
    assert _errors() == []


def test_the_prefix_is_configurable(urlconf, owner, catalog):
    urlconf("ragflow/v1")
    app = RAGFlowClient(token_for(owner), prefix="/ragflow/v1")
    assert body(app.get("llm/factories"))["code"] == 0
    assert RAGFlowClient(token_for(owner)).get("llm/factories").status_code == 404
    assert _errors() == []


def test_the_start_up_check_refuses_a_prefix_that_shares_paths(urlconf):
    from ragllm.urls import urlpatterns

    honest = [p for p in urlpatterns if str(p.pattern).startswith("api/")]
    urlconf("api/v1", *honest)
    errors = _errors()
    assert [e.id for e in errors] == ["ragllm.E033", *["ragllm.E034"] * 8]
    assert "/api/v1/llm/factories" in errors[0].msg
    assert "RAGFLOW_COMPAT_PREFIX" in errors[0].hint


def test_the_start_up_check_refuses_a_prefix_that_is_not_a_path(urlconf):
    urlconf("v1 llm")
    assert [e.id for e in _errors()] == ["ragllm.E032"]


def test_a_validation_still_running_after_the_wait_is_reported_not_taken_for_success(app, settings):
    # Inside the test's transaction the validation task is never sent: it stays pending. The
    # check for a worker is off: with none, the request would be refused before any wait
    # (test_ragflow_validation_states.py).
    settings.RAGFLOW_COMPAT_WAIT_SECONDS = 0.05
    settings.KEY_VALIDATION_WORKER_CHECK_SECONDS = 0
    answer = body(app.post("llm/set_api_key", {"llm_factory": "OpenAI", "api_key": SECRET}))
    assert answer["code"] == 102
    assert answer["message"].startswith("The key is still being tested after 0.05 seconds (task ")
    assert SECRET not in answer["message"]


@pytest.mark.parametrize("seconds", [0, 300])
def test_the_wait_must_stay_under_the_web_apps_timeout(settings, seconds):
    from tenants.checks import check_ragflow_wait

    settings.RAGFLOW_COMPAT_WAIT_SECONDS = seconds
    assert [e.id for e in check_ragflow_wait(None)] == ["ragllm.E031"]
