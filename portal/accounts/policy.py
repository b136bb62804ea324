"""Rules of higher apps about signing in, asked by the account adapter (a registry: accounts
imports no higher app).

    password_login_refusal_register("sso", check)   # check(user) -> message or None

`password_login_refusal(user)` is asked after a correct password, and after a passkey that
signs in on its own: a message refuses the sign-in with that message (portal/sso registers
"members of an organization that requires SSO sign in through its provider").
"""

from __future__ import annotations

from collections.abc import Callable

_checks: dict[str, Callable[[object], str | None]] = {}


def password_login_refusal_register(name: str, check: Callable[[object], str | None]) -> None:
    _checks[name] = check


def password_login_refusal(user) -> str | None:
    for check in _checks.values():
        message = check(user)
        if message:
            return message
    return None
