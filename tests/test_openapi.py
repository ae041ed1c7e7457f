"""The OpenAPI schema and its Swagger UI."""


def test_the_openapi_schema_documents_every_route_with_examples(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for route in (
        "factories",
        "set_api_key",
        "add_llm",
        "delete_llm",
        "enable_llm",
        "delete_factory",
        "my_llms",
        "list",
        "tasks/{task_id}",
    ):
        assert f"/api/v1/llm/{route}" in paths, route
    for route in ("default_models", "tenant_info", "set_tenant_info"):
        assert f"/api/v1/tenant/{route}" in paths, route
    # RAGFlow's own paths answer errors with HTTP 200 (its convention): they are the same views,
    # documented once under /api/v1, so no schema (nor the fuzz test) promises honest statuses
    # for them.
    assert [p for p in paths if not p.startswith("/api/")] == []
    for path, operations in paths.items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            ok = responses.get("200") or responses.get("201") or responses.get("202")
            assert ok, (path, method)
            examples = ok.get("content", {}).get("application/json", {}).get("examples")
            assert examples, f"{method.upper()} {path} has no response example"
            if method in {"post", "put"}:
                body = operation.get("requestBody", {}).get("content", {})
                assert body, f"{method.upper()} {path} has no request body"
    assert "bearerAuth" in schema["components"]["securitySchemes"]


def test_the_swagger_ui_is_served_without_a_cdn(client):
    import re

    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in asset for asset in assets)
    # Every script, stylesheet and icon comes from our own static files.
    assert [a for a in assets if a.startswith(("http:", "https:", "//"))] == []
    assert all(a.startswith("/static/") for a in assets if a.endswith((".js", ".css")))


def test_every_operation_is_described_for_api_users_with_its_answers_shapes(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            assert len(operation.get("description", "")) > 40, where
            for status, response in operation["responses"].items():
                body = response["content"]["application/json"]["schema"]
                envelope = components[body["$ref"].rsplit("/", 1)[-1]]
                assert list(envelope["properties"]) == ["code", "message", "data"], where
                assert response["content"]["application/json"].get("examples"), (where, status)
                if status.startswith(("4", "5")):
                    assert response.get("description"), (where, status)
