"""What a username may be, and random ones for "Generate Usernames!"."""

from __future__ import annotations

import re
import secrets

MIN_LENGTH = 3
MAX_LENGTH = 30
_VALID = re.compile(rf"[a-z0-9_-]{{{MIN_LENGTH},{MAX_LENGTH}}}")

RULE = f"{MIN_LENGTH}-{MAX_LENGTH} characters of a-z, 0-9, '_' and '-'"

ADJECTIVES = (
    "amber", "brave", "calm", "clever", "cosmic", "daring", "eager", "fuzzy",
    "gentle", "happy", "jolly", "keen", "lucky", "mellow", "nimble", "noble",
    "plucky", "quiet", "rapid", "rusty", "shiny", "silent", "snappy", "sunny",
    "swift", "tidy", "vivid", "witty", "zesty", "bold",
)
NOUNS = (
    "badger", "beaver", "comet", "falcon", "ferret", "gecko", "heron", "koala",
    "lemur", "lynx", "marmot", "meteor", "narwhal", "otter", "panda", "pebble",
    "puffin", "quokka", "raven", "walrus", "rocket", "salmon", "tapir", "tiger",
    "toucan", "walnut", "wombat", "yak", "zebra", "maple",
)


class InvalidUsername(ValueError):
    pass


def validate(value: object) -> str:
    """Return `value` if it is an acceptable username, else raise InvalidUsername."""
    if not isinstance(value, str):
        raise InvalidUsername("username must be a string")
    if not _VALID.fullmatch(value):
        raise InvalidUsername(f"username must be {RULE}")
    return value


def random_username(choice=secrets.choice, below=secrets.randbelow) -> str:
    # 30 * 30 * 10000 = 9 million names: collisions are rare and retried.
    return f"{choice(ADJECTIVES)}-{choice(NOUNS)}-{below(10000):04d}"
