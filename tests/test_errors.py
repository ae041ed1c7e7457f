"""Domain errors carry no HTTP status; the API's one handler maps them to status and code."""

import pytest

from ragllm import errors
from ragllm.api import exception_handler


class UnknownWidget(errors.NotFound):
    """A domain error of some app, deriving from a shared class."""


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.InvalidInput("bad value"), 400, 102),
        (errors.MissingArguments(["llm_factory", "api_key"]), 400, 101),
        (errors.PermissionDenied("no"), 403, 403),
        (errors.NotFound("gone"), 404, 102),
        (UnknownWidget("no such widget"), 404, 102),
        (errors.Conflict("default model"), 409, 102),
        (errors.UpstreamRateLimited("slow down"), 429, 102),
        (errors.UpstreamError("provider down"), 502, 102),
        (errors.ApplicationError("refused"), 400, 102),
    ],
)
def test_it_maps_each_domain_error_to_a_status_and_a_ragflow_code(error, status, code):
    response = exception_handler(error, {})
    assert response.status_code == status
    assert response.data == {"code": code, "message": error.message, "data": None}


def test_it_keeps_ragflows_wording_for_missing_arguments_and_passes_data_through():
    response = exception_handler(errors.MissingArguments(["llm_factory"]), {})
    assert response.data["message"] == "required argument are missing: llm_factory; "
    response = exception_handler(errors.UpstreamError("down", data={"task_id": "t1"}), {})
    assert response.data["data"] == {"task_id": "t1"}


def test_domain_errors_know_nothing_of_http():
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.ApplicationError):
            assert not {"status", "http_status", "code"} & set(vars(cls)), cls
