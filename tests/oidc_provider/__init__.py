"""A real OpenID Connect provider for the SSO tests: a small Django project of its own
(django-oauth-toolkit's OIDC support, its own SQLite database), run as a separate process.

    python -m tests.oidc_provider --port 0 --data DIR --client-id ID --client-secret S \
        --redirect-uri URL

It prints `ready http://127.0.0.1:<port>/o` (the issuer) once it listens. Its people all have
the password in PASSWORD; a person's user name chooses what the provider does wrong for them
(FAULTS), so that the portal's refusals are tested against real tokens:

    olivia, alice, bob, carol   nothing: a good ID token and a verified e-mail
    unverified        email_verified is false
    wrongaud          the ID token is issued for another client (aud)
    expired           the ID token expired an hour ago
    badsig            the ID token is signed with a key the provider does not publish

No portal code is imported here: the portal meets it only over HTTP, as it would a real IdP.
"""

PASSWORD = "provider-pass-1"  # noqa: S105 - a test identity provider's test people
PEOPLE = {
    # user name: (e-mail, full name)
    "olivia": ("olivia@acme.test", "Olivia Owner"),
    "alice": ("alice@acme.test", "Alice Example"),
    "bob": ("bob@acme.test", "Bob Example"),
    "carol": ("carol@elsewhere.test", "Carol Outside"),
    "unverified": ("unverified@acme.test", "Una Verified"),
    "wrongaud": ("wrongaud@acme.test", "Walt Aud"),
    "expired": ("expired@acme.test", "Ed Expired"),
    "badsig": ("badsig@acme.test", "Bea Signature"),
}
FAULTS = {"unverified", "wrongaud", "expired", "badsig"}
