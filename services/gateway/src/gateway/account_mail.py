"""The mails with single-use links, in the person's preferred language.

The token travels in the link's fragment (`#token=`): a browser never sends a
fragment to a server, so it stays out of access logs, proxies and Referer
headers; the page's script reads it.
"""

from __future__ import annotations

from gateway.mail import Mail

RESET_PAGE = "/reset-password"
VERIFY_PAGE = "/verify-email"

_RESET = {
    "en": (
        "Reset your JHaaS password",
        "Someone (we hope you) asked to reset the password of the JHaaS account "
        "{username!r}.\n\nTo choose a new password, open this link within {minutes} "
        "minutes; it works once:\n\n{link}\n\nIf you did not ask for this, ignore this "
        "mail: your password stays as it is.\n",
    ),
    "de": (
        "Ihr JHaaS-Passwort zurücksetzen",
        "Jemand (hoffentlich Sie) hat verlangt, das Passwort des JHaaS-Kontos "
        "{username!r} zurückzusetzen.\n\nUm ein neues Passwort zu wählen, öffnen Sie "
        "diesen Link innerhalb von {minutes} Minuten; er gilt einmal:\n\n{link}\n\n"
        "Wenn Sie das nicht verlangt haben, beachten Sie diese Mail nicht: Ihr Passwort "
        "bleibt, wie es ist.\n",
    ),
}
_VERIFY = {
    "en": (
        "Confirm your e-mail address for JHaaS",
        "The JHaaS account {username!r} gave this address as its own.\n\nTo confirm it, "
        "open this link within {hours} hours while signed in to that account:\n\n"
        "{link}\n\nIf that was not you, ignore this mail: the address is not used "
        "until it is confirmed.\n",
    ),
    "de": (
        "Bestätigen Sie Ihre E-Mail-Adresse für JHaaS",
        "Das JHaaS-Konto {username!r} hat diese Adresse als seine angegeben.\n\nUm sie zu "
        "bestätigen, öffnen Sie diesen Link innerhalb von {hours} Stunden, während Sie "
        "in diesem Konto angemeldet sind:\n\n{link}\n\nWenn Sie das nicht waren, beachten "
        "Sie diese Mail nicht: Die Adresse wird erst nach der Bestätigung verwendet.\n",
    ),
}


def link_to(public_url: str, page: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{page}#token={token}"


def _mail(texts: dict[str, tuple[str, str]], kind: str, language: str, **values: object) -> Mail:
    # A mail has no browser to ask: an account that chose no language ("") gets English.
    subject, body = texts.get(language or "en", texts["en"])
    return Mail(to=str(values["to"]), subject=subject, text=body.format(**values), kind=kind)


def reset_mail(*, to: str, username: str, link: str, minutes: int, language: str = "en") -> Mail:
    return _mail(
        _RESET, "password_reset", language, to=to, username=username, link=link, minutes=minutes
    )


def verify_mail(*, to: str, username: str, link: str, hours: int, language: str = "en") -> Mail:
    return _mail(
        _VERIFY, "verify_email", language, to=to, username=username, link=link, hours=hours
    )
