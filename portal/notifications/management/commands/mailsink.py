"""Run the development SMTP sink: every message lands in a Maildir (read at /staff/mail/)."""

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run a local SMTP server that stores every message in MAIL_SINK_DIR."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.EMAIL_HOST)
        parser.add_argument("--port", type=int, default=settings.EMAIL_PORT)

    def handle(self, *args, host: str, port: int, **options) -> None:
        import time

        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Mailbox

        for sub in ("tmp", "new", "cur"):  # a Maildir; mailbox only makes these for a new dir
            (settings.MAIL_SINK_DIR / sub).mkdir(parents=True, exist_ok=True)
        controller = Controller(Mailbox(str(settings.MAIL_SINK_DIR)), hostname=host, port=port)
        controller.start()
        self.stdout.write(f"Mail sink on {host}:{port}, writing to {settings.MAIL_SINK_DIR}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            controller.stop()
