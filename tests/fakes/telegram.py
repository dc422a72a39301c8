"""``/telegram/bot<token>/<method>``: the Bot API's answer shape (core.telegram.org/bots/api#making-requests):
``{"ok": true, "result": …}`` or ``{"ok": false, "error_code", "description"}`` with the same HTTP status.
Only ``getMe`` is imitated; tokens are registered with ``fake.telegram.add_bot()``."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router, route
from litestar.params import FromPath

from tests.fakes.state import ProviderState, stable_id
from tests.fakes.web import json_response


def failure(code: int, description: str) -> Response[Any]:
    return json_response({"ok": False, "error_code": code, "description": description}, code)


def router(state: ProviderState) -> Router:
    @route("/{bot:str}/{method:str}", http_method=["GET", "POST"], status_code=200)
    async def call(bot: FromPath[str], method: FromPath[str]) -> Response[Any]:
        token = bot.removeprefix("bot")
        with state.lock:
            username = state.bot_tokens.get(token) if bot.startswith("bot") else None
        if username is None:
            return failure(401, "Unauthorized")
        if method != "getMe":
            return failure(404, "Not Found")
        bot_id = int(token.partition(":")[0]) if token.partition(":")[0].isdigit() else int(stable_id("", token)[:8], 16)
        return json_response({"ok": True, "result": {
            "id": bot_id, "is_bot": True, "first_name": "Patchwire Test Bot", "username": username,
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}})

    return Router("/telegram", route_handlers=[call])
