"""The core models accept what the broker sends and refuse what it must never send."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from broker.errors import BadRequestData, HttpError, NonexistentTenant
from models.core import ProblemDetails, UpdateResult


@pytest.mark.parametrize("error", [BadRequestData("x"), NonexistentTenant("t"),
                                   HttpError(415, "wrong type")])
def test_every_error_is_a_problem_details(error: BadRequestData) -> None:
    problem = ProblemDetails.model_validate(error.problem("/ngsi-ld/v1/entities"))
    assert problem.status == error.status


def test_problem_details_refuses_foreign_types() -> None:
    with pytest.raises(ValidationError):
        ProblemDetails.model_validate({"type": "about:blank", "title": "t", "status": 400,
                                       "detail": "d"})


def test_update_result_shape() -> None:
    result = UpdateResult.model_validate(
        {"updated": ["a"], "notUpdated": [{"attributeName": "b", "reason": "exists"}]})
    assert result.notUpdated[0].attributeName == "b"
