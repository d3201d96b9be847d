"""The page's forms. The backend has the final word; these checks save a round trip
and give the browser the same rules (pattern, lengths) for instant feedback."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Regexp

USERNAME_RULE = "3-30 characters: lowercase letters, digits, '_' or '-'"
MAX_GENERATE = 50


class AddUserForm(FlaskForm):
    username = StringField(
        "New username",
        validators=[
            InputRequired(message="Enter a username."),
            Length(min=3, max=30, message=f"A username is {USERNAME_RULE}."),
            Regexp(r"^[a-z0-9_-]+\Z", message=f"A username is {USERNAME_RULE}."),
        ],
        render_kw={"pattern": "[a-z0-9_\\-]{3,30}", "autocomplete": "off", "title": USERNAME_RULE},
    )


class GenerateForm(FlaskForm):
    count = IntegerField(
        "How many",
        default=5,
        validators=[
            InputRequired(message="Say how many usernames to generate."),
            NumberRange(min=1, max=MAX_GENERATE, message=f"Generate between 1 and {MAX_GENERATE} at a time."),
        ],
    )


class DeleteForm(FlaskForm):
    """Nothing but the CSRF token: the username is in the URL."""
