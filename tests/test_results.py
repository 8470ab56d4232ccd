"""Result fields: strings assigned become members, members stay themselves."""

from __future__ import annotations

import pytest

from producer.results import Action, ErrorKind, RegisterResult


def test_action_and_error_type_are_members_however_assigned() -> None:
    result = RegisterResult(source="a.tif", action="created")
    assert type(result.action) is Action and result.action is Action.CREATED
    result.action = Action.UPDATED
    assert result.action is Action.UPDATED
    result.action = "unchanged"
    assert type(result.action) is Action and result.action == "unchanged"
    result.error_type = "storage"
    assert type(result.error_type) is ErrorKind and result.error_type is ErrorKind.STORAGE
    result.error_type = ErrorKind.INPUT
    assert result.error_type is ErrorKind.INPUT
    result.error_type = None
    assert result.error_type is None
    result.fail("a.tif: broken", ValueError("x"))
    assert (result.action, result.error_type) == (Action.ERROR, ErrorKind.INTERNAL)
    with pytest.raises(ValueError):
        result.action = "made"
    with pytest.raises(ValueError):
        result.error_type = "soon"
    with pytest.raises(ValueError):
        RegisterResult(action="made")
    assert RegisterResult().action is Action.ERROR
