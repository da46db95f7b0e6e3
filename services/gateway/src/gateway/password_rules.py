"""What a new password must be, wherever one is set: account creation, the first
admin, `create-admin`, a password change, a reset. The length (12 to 1024) is in
the schema (`schemas.Password`); these rules need the username, or a list.

The list (`wordlists/common-passwords.txt.gz`, its source and licence in the
README beside it) is loaded once, on first use: ~100,000 entries, ~10 MB of
memory, ~0.2 s (measured on the build machine; `common_passwords()` at start
keeps that wait out of the first request that sets a password).
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

# NIST SP 800-63B asks for at least 8; 12 leaves no room for the short
# passwords that guessing tries first. Not a setting: lowering it helps nobody,
# and the API schema states it.
MIN_PASSWORD_LENGTH = 12
MIN_DISTINCT_CHARACTERS = 5
# A shorter "base" (two letters and ten digits) is no common word: left alone.
BASE_MIN_LENGTH = 3
COMMON_PASSWORDS_FILE = Path(__file__).parent / "wordlists" / "common-passwords.txt.gz"

# Digits, symbols and spaces at either end: what people add to a word to get
# past a rule ("Dragon2024!", "!!monkey!!").
_ENDS = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def base_word(folded: str) -> str:
    """`folded` without the digits, symbols and spaces at its ends."""
    return _ENDS.sub("", folded)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The casefolded common passwords and common words passwords are made of."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.rstrip("\n") for line in lines)


def password_problem(password: str, username: str) -> str | None:
    """None when `password` may be set for `username`, else what is wrong with it."""
    folded = password.casefold()
    base = base_word(folded)
    name = username.casefold()
    if name in (folded, base):
        return "must not be the username"
    common = common_passwords()
    if folded in common:
        return "is one of the most common passwords; choose another"
    if len(base) >= BASE_MIN_LENGTH and base in common:
        return (
            "is a common password with digits or symbols added; choose one that is not "
            "built on a common word"
        )
    if len(set(folded)) < MIN_DISTINCT_CHARACTERS:
        return f"must use at least {MIN_DISTINCT_CHARACTERS} different characters"
    return None
