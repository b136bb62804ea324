"""Run the test identity provider: migrate its SQLite database, seed it, serve it."""

import argparse
import contextlib
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _signing_key(path: Path) -> None:
    if path.exists():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _seed(client_id: str, client_secret: str, redirect_uri: str) -> None:
    from django.contrib.auth.models import User
    from oauth2_provider.models import Application

    from tests.oidc_provider import PASSWORD, PEOPLE

    for username, (email, name) in PEOPLE.items():
        first, _, last = name.partition(" ")
        user, _ = User.objects.update_or_create(
            username=username, defaults={"email": email, "first_name": first, "last_name": last}
        )
        user.set_password(PASSWORD)
        user.save()
    Application.objects.filter(client_id=client_id).delete()
    Application.objects.create(
        name="Backfill",
        client_id=client_id,
        client_secret=client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=False,  # people see the consent page
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.oidc_provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--data", type=Path, required=True, help="directory for its database")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", required=True, help="the portal's callback URL")
    args = parser.parse_args(argv)

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    args.data.mkdir(parents=True, exist_ok=True)
    _signing_key(args.data / "signing-key.pem")

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *log_args):  # noqa: A002 - the stdlib's name
            sys.stderr.write("idp: " + (format % log_args) + "\n")

    server = ThreadedWSGIServer((args.host, args.port), QuietHandler)
    port = server.server_address[1]
    os.environ["OIDC_PROVIDER_DATA"] = str(args.data)
    os.environ["OIDC_PROVIDER_ISSUER"] = f"http://{args.host}:{port}/o"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"

    import django
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    _seed(args.client_id, args.client_secret, args.redirect_uri)
    server.set_app(get_wsgi_application())
    print(f"ready {os.environ['OIDC_PROVIDER_ISSUER']}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
