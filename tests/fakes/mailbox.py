"""The fake Gmail's mailbox: messages, labels, Gmail's search syntax (a documented subset) and the resources
``users.messages.list`` / ``users.messages.get`` answer with (developers.google.com/gmail/api/reference/rest).

Tests add messages with ``fake.google.mailbox.add(...)`` and make the next requests fail with
``fake.google.mailbox.fail_next(status, count)`` (Google's error bodies, tests/fakes/gmail.py).

Search (``q``): ``from:``, ``to:``, ``subject:``, ``label:`` (a label's name or id), ``is:unread|read|starred|
important``, ``in:inbox|sent|trash|spam|anywhere``, ``after:`` / ``before:`` (epoch seconds or
``yyyy/mm/dd``), quoted phrases, a leading ``-`` negates; any other word (or unknown ``operator:value``)
must appear in the subject, the addresses or the body (case-insensitive), as Gmail treats it. Several terms
are ANDed (no ``OR`` / braces; parentheses are ignored). Like Gmail, spam and trash are left out unless
``includeSpamTrash`` or ``in:`` asks for them. Lists are newest first (``internalDate``).
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

SYSTEM_LABELS = ("INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "CATEGORY_PERSONAL")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class FakeMessage:
    id: str
    thread_id: str
    label_ids: list[str]
    sender: str
    to: str
    subject: str
    text: str
    html: str | None
    internal_date: int  # milliseconds since the epoch, as Gmail keeps it
    history_id: int
    seq: int = 0  # order of delivery: ties of internalDate are listed newest delivered first
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> list[dict[str, str]]:
        date = format_datetime(datetime.fromtimestamp(self.internal_date / 1000, UTC))
        pairs = [("From", self.sender), ("To", self.to), ("Subject", self.subject), ("Date", date),
                 ("Message-ID", f"<{self.id}@mail.example.com>"), *self.extra_headers.items()]
        return [{"name": name, "value": value} for name, value in pairs]

    def rfc822(self) -> bytes:
        mail = EmailMessage()
        for header in self.headers():
            mail[header["name"]] = header["value"]
        mail.set_content(self.text)
        if self.html is not None:
            mail.add_alternative(self.html, subtype="html")
        return mail.as_bytes()

    def searchable(self) -> str:
        return " ".join((self.subject, self.sender, self.to, self.text, self.html or "")).lower()


class Mailbox:
    """One account's messages (the fake serves one mailbox per provider state)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.messages: list[FakeMessage] = []
        self.labels: dict[str, str] = {name: name for name in SYSTEM_LABELS}  # id → name
        self.history_id = 1000
        self.failures: list[int | None] = []  # statuses the next API requests answer with (tests/fakes/gmail.py)

    def add(self, subject: str, *, sender: str = "Grace Hopper <grace@example.com>", to: str = "ada@example.com",
            text: str = "", html: str | None = None, labels: tuple[str, ...] = ("INBOX", "UNREAD"),
            received_at: float | None = None, thread_id: str | None = None) -> FakeMessage:
        """A message delivered now (or at ``received_at``, epoch seconds); its labels by id or name."""
        self.history_id += 1
        seq = len(self.messages)
        message_id = format(int((received_at or self.clock()) * 1000) << 12 | seq % 4096, "x")
        message = FakeMessage(id=message_id, thread_id=thread_id or message_id,
                              label_ids=[self.label_id(name) for name in labels], sender=sender, to=to,
                              subject=subject, text=text or f"Body of {subject}", html=html,
                              internal_date=int((received_at if received_at is not None else self.clock()) * 1000),
                              history_id=self.history_id, seq=seq)
        self.messages.append(message)
        return message

    def find_label(self, name_or_id: str) -> str | None:
        for label_id, name in self.labels.items():
            if name_or_id in (label_id, name) or name_or_id.upper() == label_id == name:
                return label_id
        return None

    def label_id(self, name_or_id: str) -> str:
        """The id of a label (system labels by name; a user label is created on first use, ``Label_N``)."""
        if (found := self.find_label(name_or_id)) is not None:
            return found
        label_id = f"Label_{len(self.labels) - len(SYSTEM_LABELS) + 1}"
        self.labels[label_id] = name_or_id
        return label_id

    def fail_next(self, status: int, count: int = 1, *, after: int = 0) -> None:
        """The next ``count`` Gmail API requests answer ``status`` with Google's error body (after ``after``
        requests answered as usual)."""
        self.failures += [None] * after + [status] * count

    def take_failure(self) -> int | None:
        return self.failures.pop(0) if self.failures else None

    def get(self, message_id: str) -> FakeMessage | None:
        return next((m for m in self.messages if m.id == message_id), None)

    def search(self, q: str, label_ids: list[str], include_spam_trash: bool) -> list[FakeMessage]:
        """Matching messages, newest first. ``ValueError`` for an unknown label id or a query that cannot be read
        (unbalanced quotes)."""
        terms = [t for t in (term.strip("()") for term in shlex.split(q, posix=True)) if t] if q.strip() else []
        wanted = [found for x in label_ids if (found := self.find_label(x)) is not None]
        if len(wanted) != len(label_ids):
            raise ValueError(f"Invalid label: {next(x for x in label_ids if self.find_label(x) is None)}")
        scope_given = any(t.lower().startswith(("in:", "label:spam", "label:trash")) for t in terms)
        found = [m for m in self.messages
                 if all(w in m.label_ids for w in wanted)
                 and (include_spam_trash or scope_given or not {"SPAM", "TRASH"} & set(m.label_ids) or
                      {"SPAM", "TRASH"} & set(wanted))
                 and all(self._matches(m, term) for term in terms)]
        return sorted(found, key=lambda m: (m.internal_date, m.seq), reverse=True)

    def _matches(self, message: FakeMessage, term: str) -> bool:
        if term.startswith("-") and len(term) > 1:
            return not self._matches(message, term[1:])
        operator, _, value = term.partition(":")
        operator, value = operator.lower(), value.lower()
        checks: dict[str, Callable[[], bool]] = {
            "from": lambda: value in message.sender.lower(),
            "to": lambda: value in message.to.lower(),
            "subject": lambda: value in message.subject.lower(),
            "label": lambda: self._has_label(message, value),
            "is": lambda: self._is(message, value),
            "in": lambda: value == "anywhere" or self._has_label(message, value),
            "after": lambda: message.internal_date / 1000 > _epoch(value),
            "before": lambda: message.internal_date / 1000 < _epoch(value),
        }
        if value and operator in checks:
            return checks[operator]()
        return term.lower() in message.searchable()

    def _has_label(self, message: FakeMessage, value: str) -> bool:
        return any(value in (label_id.lower(), self.labels.get(label_id, "").lower().replace(" ", "-"))
                   for label_id in message.label_ids)

    def _is(self, message: FakeMessage, value: str) -> bool:
        if value == "read":
            return "UNREAD" not in message.label_ids
        return value.upper() in message.label_ids

    def resource(self, message: FakeMessage, fmt: str, metadata_headers: list[str]) -> dict[str, Any]:
        """The ``Message`` resource in ``format`` full, metadata, minimal or raw."""
        body: dict[str, Any] = {"id": message.id, "threadId": message.thread_id, "labelIds": list(message.label_ids),
                                "snippet": " ".join(message.text.split())[:100], "historyId": str(message.history_id),
                                "internalDate": str(message.internal_date),
                                "sizeEstimate": len(message.rfc822())}
        if fmt == "raw":
            body["raw"] = b64url(message.rfc822())
        elif fmt == "metadata":
            wanted = {h.lower() for h in metadata_headers}
            body["payload"] = {"mimeType": self._mime_type(message),
                               "headers": [h for h in message.headers() if not wanted or h["name"].lower() in wanted]}
        elif fmt == "full":
            body["payload"] = self._payload(message)
        return body

    @staticmethod
    def _mime_type(message: FakeMessage) -> str:
        return "text/plain" if message.html is None else "multipart/alternative"

    def _payload(self, message: FakeMessage) -> dict[str, Any]:
        def part(part_id: str, mime: str, text: str) -> dict[str, Any]:
            data = text.encode()
            return {"partId": part_id, "mimeType": mime, "filename": "",
                    "headers": [{"name": "Content-Type", "value": f'{mime}; charset="UTF-8"'}],
                    "body": {"size": len(data), "data": b64url(data)}}

        if message.html is None:
            single = part("", "text/plain", message.text)
            return {**single, "headers": message.headers() + single["headers"]}
        return {"partId": "", "mimeType": "multipart/alternative", "filename": "", "headers": message.headers(),
                "body": {"size": 0},
                "parts": [part("0", "text/plain", message.text), part("1", "text/html", message.html)]}


def _epoch(value: str) -> float:
    """Gmail's ``after:`` / ``before:``: epoch seconds, or a date ``yyyy/mm/dd`` (midnight, UTC here)."""
    if value.isdigit():
        return float(value)
    try:
        return datetime.strptime(value.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return float("nan")  # compares false both ways: matches nothing, as Gmail finds nothing
