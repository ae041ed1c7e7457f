"""Every route of the live OpenAPI schema, fuzzed by schemathesis as the owner, a member and an
outsider: never a 5xx, and every answer as the schema says (status, content type, headers,
body); data the schema forbids is refused with a 4xx; the outsider gets 404 from every route
scoped to the owner's tenant.

The schema is read from the running server (/api/schema/), so a route added later is fuzzed
without touching this file. Data comes from a fixed seed and a bounded number of examples per
operation (valid and invalid ones), so a run is reproducible and takes seconds.

No provider is ever called for real. Routes that start a key validation (their body has an
`async` field) get `"async": true`, so they answer before any provider is called: here we fuzz
their input handling (validation itself is tested against the fake provider in
test_api_validation.py). Whatever validations run meanwhile can only reach loopback addresses:
every other name fails to resolve while this test runs. Routes whose whole job is calling a
provider go in EXCLUDED, with the reason.
"""

from __future__ import annotations

import ipaddress
import socket
import time

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from providers.models import LLMFactory
from tenants.models import KeyValidation, ValidationState
from tenants.services.tokens import api_token_issue

SEED = 20261130
# Per operation and caller; half are valid requests, half invalid ones (on average).
MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Not checked: schemathesis' positive_data_acceptance expects every schema-valid request to be
# accepted, but rules across fields and rows (a factory that does not serve that model type, a
# hosted factory without a key, a default model the tenant has not enabled) are a 400 with the
# reason, which a JSON schema cannot express.

# (path regex, why it is not fuzzed). Only routes whose job is calling a provider belong here.
EXCLUDED: list[tuple[str, str]] = []


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(str(host).strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def loopback_only(monkeypatch):
    """Names and addresses resolve only to loopback: a provider call cannot leave the host."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        found = real_getaddrinfo(host, *args, **kwargs) if _is_loopback(host) else []
        found = [info for info in found if _is_loopback(info[4][0])]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no network in the fuzz test")
        return found

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def api_schema(live_server, catalog, tasks, loopback_only, settings):
    settings.LLM_MAX_RETRIES = 0
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json")
    for path_regex, _why in EXCLUDED:
        schema = schema.exclude(path_regex=path_regex)
    yield schema
    # Validations started in the background end before the network comes back.
    unfinished = [ValidationState.PENDING, ValidationState.RUNNING]
    deadline = time.monotonic() + 30
    while KeyValidation.objects.filter(state__in=unfinished).exists():
        assert time.monotonic() < deadline, "validations still running after the fuzz test"
        time.sleep(0.1)


def _starts_a_validation(operation) -> bool:
    body = operation.definition.raw.get("requestBody", {}).get("content", {})
    schema = body.get("application/json", {}).get("schema", {})
    if "$ref" in schema:  # "#/components/schemas/AddLLMInput"
        path, schema = schema["$ref"].removeprefix("#/").split("/"), operation.schema.raw_schema
        for part in path:
            schema = schema[part]
    return "async" in schema.get("properties", {})


def _fuzz(operation, headers: dict, check, factories: list[str]) -> None:
    valid = [
        operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
        *operation.get_strategies_from_examples(headers=headers),
    ]
    invalid = operation.as_strategy(GenerationMode.NEGATIVE, headers=headers)
    pin_async = _starts_a_validation(operation)

    @hypothesis.seed(SEED)
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(data=st.data())
    def run(data) -> None:
        positive = data.draw(st.booleans(), label="valid")
        case = data.draw(st.one_of(valid) if positive else invalid, label="case")
        if positive and isinstance(case.body, dict):
            # Random names almost never hit the catalog: half the valid requests name a real
            # factory, so that they get past the lookup into the services.
            if "llm_factory" in case.body and data.draw(st.booleans(), label="real factory"):
                case.body["llm_factory"] = data.draw(st.sampled_from(factories))
            if pin_async:
                case.body["async"] = True
        response = case.call()
        case.validate_response(response, checks=CHECKS)
        check(case, response)

    run()


@pytest.fixture
def cast(owner, member, outsider):
    return {"owner": owner, "member": member, "outsider": outsider}


@pytest.mark.slow
# schemathesis' invalid-data strategies draw from `random` themselves (their business, not ours).
@pytest.mark.filterwarnings("ignore:Do not use the `random` module:DeprecationWarning")
@pytest.mark.parametrize("role", ["owner", "member", "outsider"])
def test_every_route_answers_as_its_schema_says(role, cast, tenant, api_schema):
    _, token = api_token_issue(user=cast[role], name="fuzz")
    # Everyone acts on the owner's tenant: the outsider must be told it does not exist.
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": str(tenant.pk)}

    def check(case, response) -> None:
        # A tenant-scoped route (it takes X-Tenant-ID) never admits the tenant exists.
        tenant_scoped = any(p.name == "X-Tenant-ID" for p in case.operation.headers)
        if role == "outsider" and tenant_scoped:
            assert response.status_code == 404, (case.operation.label, response.text)

    factories = list(LLMFactory.objects.values_list("name", flat=True))
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 13
    for operation in operations:
        _fuzz(operation, headers, check, factories)
