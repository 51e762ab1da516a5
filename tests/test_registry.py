import pytest

from ssl4rl.registry import Registry, UnknownNameError


def test_unknown_name_suggests_close_matches():
    registry = Registry("task")
    registry.register("rotation")(object())
    registry.register("jigsaw")(object())
    with pytest.raises(UnknownNameError) as info:
        registry.get("rotaton")
    assert "Did you mean 'rotation'" in str(info.value)
    assert "Known: jigsaw, rotation" in str(info.value)


def test_duplicate_registration_is_refused():
    registry = Registry("source")
    registry.register("folder")(int)
    with pytest.raises(ValueError):
        registry.register("folder")(str)
