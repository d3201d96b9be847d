import pytest

from backend.usernames import InvalidUsername, random_username, validate


@pytest.mark.parametrize("name", ["abc", "a" * 30, "user_1", "x-y-z", "007"])
def test_valid_usernames(name):
    assert validate(name) == name


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 31, "Alice", "has space", "dot.ted", "émile", "tab\t", "", "new\nline"],
)
def test_invalid_usernames(name):
    with pytest.raises(InvalidUsername, match="3-30 characters"):
        validate(name)


@pytest.mark.parametrize("value", [None, 42, ["abc"], {"a": 1}])
def test_non_strings_are_invalid(value):
    with pytest.raises(InvalidUsername, match="must be a string"):
        validate(value)


def test_random_usernames_are_valid_and_varied():
    names = {random_username() for _ in range(200)}
    assert all(validate(n) for n in names)
    assert len(names) > 190
