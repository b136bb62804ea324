"""Reading the development SMTP sink: a Maildir written by aiosmtpd's Mailbox handler."""

import mailbox
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parsedate_to_datetime
from pathlib import Path


@dataclass(frozen=True)
class SunkMessage:
    key: str
    subject: str
    sender: str
    to: str
    date: datetime | None
    text: str
    html: str


def _header(message: Message, name: str) -> str:
    value = message.get(name, "")
    return str(make_header(decode_header(value))) if value else ""


def _bodies(message: Message) -> tuple[str, str]:
    text, html = "", ""
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        if part.get_content_type() == "text/plain" and not text:
            text = payload.decode(charset, errors="replace")
        elif part.get_content_type() == "text/html" and not html:
            html = payload.decode(charset, errors="replace")
    return text, html


def read_messages(directory: Path, limit: int = 200) -> list[SunkMessage]:
    if not (directory / "cur").exists() and not (directory / "new").exists():
        return []
    box = mailbox.Maildir(directory, create=False)
    result = []
    for key, message in box.items():
        text, html = _bodies(message)
        try:
            date = parsedate_to_datetime(message["Date"]) if message["Date"] else None
        except (TypeError, ValueError):
            date = None
        result.append(
            SunkMessage(
                key=key,
                subject=_header(message, "Subject"),
                sender=_header(message, "From"),
                to=_header(message, "To"),
                date=date,
                text=text,
                html=html,
            )
        )
    result.sort(key=lambda m: m.date.timestamp() if m.date else 0, reverse=True)
    return result[:limit]
