"""What a new password must be, wherever one is set: account creation, the first
admin, `create-admin`, a password change. The length (12 to 1024) is in the
schema (`schemas.Password`); these rules need the username, or a list."""

from __future__ import annotations

MIN_DISTINCT_CHARACTERS = 5

# The most common passwords of twelve characters or more, from public breach
# lists: guessing starts with them, so they are refused outright.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789012345",
        "1234567890qwerty",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "abc123456789",
        "administrator",
        "changeme1234",
        "iloveyou1234",
        "letmein12345",
        "password1234",
        "password12345",
        "password123456",
        "password1234567",
        "passwordpassword",
        "qwerty123456",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiopasdf",
        "qwertyuiopasdfgh",
        "welcome12345",
        "welcome123456",
        "zaq12wsxcde3",
    }
)


def password_problem(password: str, username: str) -> str | None:
    """None when `password` may be set for `username`, else what is wrong with it."""
    folded = password.casefold()
    if folded == username.casefold():
        return "must not be the username"
    if folded in COMMON_PASSWORDS:
        return "is one of the most common passwords; choose another"
    if len(set(folded)) < MIN_DISTINCT_CHARACTERS:
        return f"must use at least {MIN_DISTINCT_CHARACTERS} different characters"
    return None
