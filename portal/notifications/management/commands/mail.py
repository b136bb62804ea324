"""Print the messages caught by the development SMTP sink, newest first."""

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.notifications.mailsink import read_messages


class Command(BaseCommand):
    help = "List the e-mails in the development mail sink; --show N prints the N-th in full."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--show", type=int, help="print message number N (1 = newest)")
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, show: int | None, limit: int, **options) -> None:
        messages = read_messages(settings.MAIL_SINK_DIR)
        if not messages:
            self.stdout.write(f"No mail in {settings.MAIL_SINK_DIR}")
            return
        if show:
            m = messages[show - 1]
            self.stdout.write(
                f"From: {m.sender}\nTo: {m.to}\nDate: {m.date}\nSubject: {m.subject}\n"
            )
            self.stdout.write(m.text)
            return
        for number, m in enumerate(messages[:limit], start=1):
            self.stdout.write(f"{number:3}  {m.date:%Y-%m-%d %H:%M:%S}  {m.to:<32}  {m.subject}")
