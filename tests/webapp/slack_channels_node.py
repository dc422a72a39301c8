"""A node type whose channel field is a dynamic-options dropdown loaded from Slack's ``conversations.list``
through its Slack credential (the real OAuth token path), for the web tests of dynamic options.

It is not part of ``nodes``: tests register it for one test (``registered``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, ClassVar

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from engine.options import Choice, OptionsContext

PAGE_SIZE = 5
MAX_PAGES = 20


class PostConfig(msgspec.Struct, forbid_unknown_fields=True):
    credential: Annotated[int | None, msgspec.Meta(title="Slack account", extra={"widget": "credential"})] = None
    channel: Annotated[str, msgspec.Meta(title="Channel", extra={"widget": "options"})] = ""


class SlackChannelPost(NodeType):
    type_name = "test_slack_channel_post"
    title = "Slack channel (test)"
    category = "Actions"
    description = "Picks a Slack channel (tests only)."
    Config = PostConfig
    credential_types: ClassVar[tuple[str, ...]] = ("slack",)
    options_timeout: ClassVar[float] = 1.5

    async def run(self, ctx: NodeContext, config: PostConfig, items: list[Item]) -> NodeResult:
        return NodeResult.main(items)

    async def options(self, ctx: OptionsContext, field: str, credential: int | None, query: str) -> list[Choice]:
        if credential is None or ctx.credentials is None:
            raise NodeError("choose a Slack account first")
        await ctx.credentials.get(credential, accept=self.credential_types)
        token = await ctx.credentials.access_token(credential)
        base = await ctx.credentials.api_base(credential)
        channels: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            page = await self._page(ctx, base, token, cursor)
            channels += page["channels"]
            cursor = page.get("response_metadata", {}).get("next_cursor", "")
            if not cursor:
                break
        wanted = query.lower()
        return [Choice(c["id"], f"#{c['name']}") for c in channels if wanted in c["name"].lower()]

    async def _page(self, ctx: OptionsContext, base: str, token: str, cursor: str) -> dict[str, Any]:
        params = {"limit": str(PAGE_SIZE), "types": "public_channel,private_channel", "exclude_archived": "true"}
        if cursor:
            params["cursor"] = cursor
        response = await ctx.http.get(f"{base}/conversations.list", params=params,
                                      headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 429:
            raise NodeError(f"Slack is rate limiting: try again in {response.headers.get('retry-after', '?')} s")
        body = response.json()
        if not body.get("ok"):
            raise NodeError(f"Slack answered {body.get('error', 'an error')}")
        return body


@contextmanager
def registered() -> Iterator[None]:
    from nodes import registry

    registry.register(SlackChannelPost)
    try:
        yield
    finally:
        registry.unregister(SlackChannelPost)
