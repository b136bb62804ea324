"""Run by test_sentry.py in a process of its own, with production settings and SENTRY_DSN:
one request whose view fails with secrets in its message, its local variables and the request
(an API token, a session cookie, the secret key, the backend's token)."""

import os


def failing_view(request):
    secret_key = os.environ["DJANGO_SECRET_KEY"]
    backend_token = os.environ["PROVISIONING_TOKEN"]
    password = os.environ["PROBE_USER_PASSWORD"]  # as typed by someone into a form
    raise RuntimeError(
        f"backend refused Bearer {backend_token} with key {secret_key} (password={password})"
    )


def main() -> None:
    import django

    django.setup()
    from django.test import Client

    from portal.dashboard import views

    views.healthz = failing_view  # before the URLconf is first imported
    client = Client(raise_request_exception=False)
    response = client.get(
        "/healthz",
        secure=True,
        HTTP_AUTHORIZATION=f"Bearer {os.environ['PROBE_API_TOKEN']}",
        HTTP_COOKIE="sessionid=probe-session-cookie-value",
    )
    assert response.status_code == 500, response.status_code
    import sentry_sdk

    sentry_sdk.flush(timeout=10)
    print("probe done")


if __name__ == "__main__":
    main()
