import logging

import pytest

from frontend.secret_key import SecretKeyError, configured_key, load_key, share_generated_key


def test_key_from_file_is_preferred(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("k" * 40 + "\n")
    assert configured_key({"FRONTEND_SECRET_KEY_FILE": str(key_file), "FRONTEND_SECRET_KEY": "e" * 40}) == "k" * 40


def test_key_from_environment():
    assert configured_key({"FRONTEND_SECRET_KEY": "e" * 40}) == "e" * 40


def test_no_key_configured():
    assert configured_key({}) is None
    assert configured_key({"FRONTEND_SECRET_KEY": "  "}) is None


def test_unreadable_key_file_is_an_error(tmp_path):
    with pytest.raises(SecretKeyError, match="cannot read FRONTEND_SECRET_KEY_FILE"):
        configured_key({"FRONTEND_SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_short_key_is_an_error():
    with pytest.raises(SecretKeyError, match="at least 16 characters"):
        configured_key({"FRONTEND_SECRET_KEY": "short"})


def test_load_key_generates_a_random_one_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="frontend.secret_key"):
        first, second = load_key({}), load_key({})
    assert len(first) == 64 and first != second
    assert "random key for this process only" in caplog.text


def test_load_key_uses_the_configured_one():
    assert load_key({"FRONTEND_SECRET_KEY": "e" * 40}) == "e" * 40


def test_share_generated_key_sets_one_key_for_the_workers():
    environ = {}
    assert share_generated_key(environ) is True
    key = environ["FRONTEND_SECRET_KEY"]
    assert share_generated_key(environ) is False
    assert environ["FRONTEND_SECRET_KEY"] == key
