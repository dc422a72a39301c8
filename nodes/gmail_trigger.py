"""Gmail Trigger: starts the workflow with the e-mails that arrived since the last poll and match a search
query and / or labels, through a connected Google account (credential type ``google``).

Gmail lists messages newest first, by id only. The first poll (the baseline) records ``after``, the poll's
time minus an hour, and the ids listed since then; every later poll adds ``after:<that time>`` to the query
(Gmail's search takes epoch seconds), so nothing older than the activation can ever look new, and lists page
by page until a page holds only ids it has seen. New ids are fetched (``users.messages.get``) oldest first, at
most ``MAX_NEW_PER_POLL`` per poll (the rest stay new for the next poll). The hour of overlap covers a clock
that differs from Google's; the ids seen in it keep those messages from starting the workflow.

A 401 gets one token refresh (``ctx.credentials.refresh_after_unauthorized``) and one retry; 429 and 5xx are a
``NodeError`` the scheduler backs off from; a message deleted between the list and the get is skipped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import httpx
import msgspec

from engine.contract import Item, PollContext, PollResult, PollTriggerType
from engine.errors import NodeError
from engine.netguard import AddressRefused
from engine.policy import kind_of_status
from nodes.polling import IntervalMinutes, interval_seconds, remember, seen_of

BASELINE_OVERLAP = 3600
PAGE_SIZE = 100
MAX_LISTED = 500
MAX_NEW_PER_POLL = 100
CONCURRENT_GETS = 5
TIMEOUT = 30.0
SIMPLE_HEADERS = ("Subject", "From", "To", "Cc", "Date")


class GmailTriggerConfig(msgspec.Struct, forbid_unknown_fields=True):
    credential: Annotated[int, msgspec.Meta(
        title="Google account", description="A connected Google credential.", extra={"widget": "credential"})]
    query: Annotated[str, msgspec.Meta(
        title="Search", description="Gmail's search syntax, as in its search box: from:ada@example.com "
        "subject:invoice is:unread. Empty: every message.")] = ""
    label_ids: Annotated[str, msgspec.Meta(
        title="Label IDs", description="Only messages with all of these labels, separated by commas: INBOX, UNREAD, "
        "Label_12 (a user label's id). Empty: any label.")] = "INBOX"
    simplify: Annotated[bool, msgspec.Meta(
        title="Simplify", description="Only subject, from, to, cc, date and snippet; off: the whole message with "
        "its decoded text and HTML.")] = True
    interval_minutes: IntervalMinutes = 1

    def labels(self) -> list[str]:
        return [label for label in self.label_ids.replace(",", " ").split() if label]

    def problems(self) -> dict[str, str]:
        bad = [label for label in self.labels() if not all(c.isalnum() or c in "_-" for c in label)]
        if bad:
            return {"label_ids": f"{bad[0]!r} is not a label id (letters, digits, _ and -)."}
        return {}


class GmailTrigger(PollTriggerType):
    """New Gmail messages matching a query and labels, oldest first; one execution per poll that found any."""

    type_name = "gmail_trigger"
    version = 1
    title = "Gmail Trigger"
    description = "Starts the workflow when new e-mail matching a search or labels arrives in Gmail."
    Config = GmailTriggerConfig
    credential_types: ClassVar[tuple[str, ...]] = ("google",)

    def interval(self, config: GmailTriggerConfig) -> float:
        return interval_seconds(config.interval_minutes)

    async def poll(self, ctx: PollContext, config: GmailTriggerConfig, state: dict[str, Any] | None) -> PollResult:
        api = await GmailApi.open(ctx, config.credential, self.credential_types)
        after = _after_of(state)
        if after is None:
            after = int(ctx.now.timestamp()) - BASELINE_OVERLAP
            listed = await api.list_ids(_query(config, after), config.labels(), set())
            ctx.logger.info("Gmail: baseline of %d messages", len(listed))
            return PollResult([], {"after": after, "seen": remember([], listed)})
        seen = seen_of(state)
        known = set(seen)
        listed = await api.list_ids(_query(config, after), config.labels(), known)
        fresh = [message_id for message_id in reversed(listed) if message_id not in known]
        taken = fresh[:MAX_NEW_PER_POLL]
        messages = await api.messages(taken, simplify=config.simplify)
        later = set(fresh[MAX_NEW_PER_POLL:])
        cursor = {"after": after, "seen": remember(seen, [i for i in listed if i not in later])}
        return PollResult([item_of(m, simplify=config.simplify) for m in messages if m is not None], cursor)


def _after_of(state: dict[str, Any] | None) -> int | None:
    after = (state or {}).get("after")
    return after if isinstance(after, int) and not isinstance(after, bool) else None


def _query(config: GmailTriggerConfig, after: int) -> str:
    """The search with the baseline's bound; the user's part in parentheses, so that an ``OR`` in it stays
    inside (Gmail binds ``OR`` tighter than the implicit AND, but a ``{…}`` or ``-`` must not swallow ``after:``)."""
    query = config.query.strip()
    return f"({query}) after:{after}" if query else f"after:{after}"


class GmailApi:
    """Gmail's REST API with the credential's access token: one refresh and one retry after a 401."""

    def __init__(self, ctx: PollContext, credential_id: int, base: str) -> None:
        self.ctx, self.credential_id, self.base = ctx, credential_id, f"{base}/gmail/v1/users/me"
        self.token: str | None = None

    @classmethod
    async def open(cls, ctx: PollContext, credential_id: int, accept: tuple[str, ...]) -> GmailApi:
        if ctx.credentials is None:
            raise NodeError("this poll has no access to credentials", kind="other")
        await ctx.credentials.get(credential_id, accept=accept)  # the owner's, and a Google account
        return cls(ctx, credential_id, await ctx.credentials.api_base(credential_id))

    async def list_ids(self, query: str, labels: list[str], seen: set[str]) -> list[str]:
        """Ids newest first, page by page, until a page holds only ``seen`` ids (or ``MAX_LISTED``)."""
        ids: list[str] = []
        token: str | None = None
        while len(ids) < MAX_LISTED:
            params = [("q", query), ("maxResults", str(PAGE_SIZE)), *(("labelIds", label) for label in labels)]
            page = await self.get("/messages", params + ([("pageToken", token)] if token else []))
            found = [m["id"] for m in _list_of(page.get("messages"), "messages") if isinstance(m.get("id"), str)]
            ids += found
            token = page.get("nextPageToken") if isinstance(page.get("nextPageToken"), str) else None
            if not token or not found or all(message_id in seen for message_id in found):
                break
        return list(dict.fromkeys(ids))[:MAX_LISTED]

    async def messages(self, ids: list[str], *, simplify: bool) -> list[dict[str, Any] | None]:
        """The messages (``None`` for one deleted since it was listed), a few requests at a time."""
        params = [("format", "metadata"), *(("metadataHeaders", h) for h in SIMPLE_HEADERS)] if simplify \
            else [("format", "full")]
        limit = asyncio.Semaphore(CONCURRENT_GETS)

        async def one(message_id: str) -> dict[str, Any] | None:
            async with limit:
                return await self.get(f"/messages/{message_id}", params, missing_ok=True)

        return list(await asyncio.gather(*(one(message_id) for message_id in ids)))

    async def get(self, path: str, params: list[tuple[str, str]], *, missing_ok: bool = False) -> Any:
        assert self.ctx.credentials is not None
        if self.token is None:
            self.token = await self.ctx.credentials.access_token(self.credential_id)
        used = self.token
        response = await self._send(path, params, used)
        if response.status_code == 401:
            if self.token == used:  # a concurrent get may have refreshed it already
                self.ctx.logger.info("Gmail answered 401: refreshing the token and retrying once")
                self.token = await self.ctx.credentials.refresh_after_unauthorized(self.credential_id, used)
            response = await self._send(path, params, self.token)
        if response.status_code == 404 and missing_ok:
            return None
        return _answer(response, path)

    async def _send(self, path: str, params: list[tuple[str, str]], token: str) -> httpx.Response:
        what = f"Gmail GET {path.split('/messages/')[0]}/messages"
        try:
            return await self.ctx.http.get(self.base + path, params=params, timeout=TIMEOUT,
                                           headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        except AddressRefused as exc:
            raise NodeError(f"{what} refused: {exc}", kind="other") from None
        except httpx.TimeoutException:
            raise NodeError(f"{what} timed out after {TIMEOUT:g} s", kind="timeout") from None
        except httpx.HTTPError as exc:
            raise NodeError(f"{what} failed: {type(exc).__name__} {exc}".rstrip(), kind="network") from None


def _answer(response: httpx.Response, path: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        said = error.get("message") if isinstance(error, dict) and isinstance(error.get("message"), str) else ""
        retry_after = response.headers.get("retry-after", "")
        raise NodeError(f"Gmail answered HTTP {response.status_code}" + (f": {said[:300]}" if said else ""),
                        kind=kind_of_status(response.status_code),
                        retry_after=float(retry_after) if retry_after.isdigit() else None)
    if not isinstance(body, dict):
        raise NodeError(f"Gmail's answer to {path.split('/messages/')[0] or '/'} is not a JSON object", kind="other")
    return body


def _list_of(value: Any, name: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise NodeError(f"Gmail's {name!r} is not a list of objects", kind="other")
    return value


def item_of(message: dict[str, Any], *, simplify: bool) -> Item:
    """A message as the trigger's item: the simple fields, or the whole resource with its text and HTML."""
    payload = message.get("payload") if isinstance(message.get("payload"), dict) else {}
    headers = {str(h.get("name", "")).lower(): h.get("value", "") for h in payload.get("headers") or []
               if isinstance(h, dict)}
    received = message.get("internalDate")
    simple = {"id": message.get("id"), "threadId": message.get("threadId"), "labelIds": message.get("labelIds", []),
              "subject": headers.get("subject", ""), "from": headers.get("from", ""), "to": headers.get("to", ""),
              "cc": headers.get("cc", ""), "date": headers.get("date", ""),
              "received_at": datetime.fromtimestamp(int(received) / 1000, UTC).isoformat().replace("+00:00", "Z")
              if isinstance(received, str) and received.isdigit() else None,
              "snippet": message.get("snippet", "")}
    if simplify:
        return simple
    return {**message, **simple, "text": _body_of(payload, "text/plain"), "html": _body_of(payload, "text/html")}


def _body_of(part: dict[str, Any], mime_type: str) -> str | None:
    """The first part of ``mime_type`` (depth first), decoded from base64url."""
    if part.get("mimeType") == mime_type and isinstance((part.get("body") or {}).get("data"), str):
        data = part["body"]["data"]
        try:
            return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
    for child in part.get("parts") or []:
        if isinstance(child, dict) and (found := _body_of(child, mime_type)) is not None:
            return found
    return None
