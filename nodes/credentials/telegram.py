"""Telegram bot token. ``test`` calls ``getMe`` at ``PATCHWIRE_TELEGRAM_API_URL`` (default
https://api.telegram.org): the token is part of the URL path, so errors never quote the URL."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

import httpx
import msgspec

from engine.credentials.types import CredentialTestContext, CredentialType, OpenCredential
from engine.errors import CredentialError

DEFAULT_API_URL = "https://api.telegram.org"
BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")


class TelegramSecret(msgspec.Struct, forbid_unknown_fields=True):
    bot_token: Annotated[str, msgspec.Meta(title="Bot token", description="From @BotFather, e.g. 123456:ABC-DEF…")]

    def problems(self) -> dict[str, str]:
        if not BOT_TOKEN.fullmatch(self.bot_token.strip()):
            return {"bot_token": "A bot token looks like 123456789:AAE… (digits, a colon, then letters)."}
        return {}


def api_url(env: Mapping[str, str]) -> str:
    """The Bot API's base URL: ``PATCHWIRE_TELEGRAM_API_URL`` (tests point it at a local server)."""
    return (env.get("PATCHWIRE_TELEGRAM_API_URL") or DEFAULT_API_URL).rstrip("/")


class TelegramBot(CredentialType):
    """A Telegram bot's token."""

    type_name = "telegram_bot"
    title = "Telegram bot"
    description = "A bot token from @BotFather."
    Secret = TelegramSecret
    docs_url = "https://core.telegram.org/bots/api#authorizing-your-bot"

    async def test(self, ctx: CredentialTestContext, cred: OpenCredential) -> str:
        url = f"{api_url(ctx.env)}/bot{cred.secret['bot_token'].strip()}/getMe"
        try:
            response = await ctx.http.get(url, timeout=ctx.timeout)
        except httpx.TimeoutException:
            raise CredentialError("Telegram did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CredentialError(f"cannot reach Telegram: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("ok"):
            description = body.get("description") if isinstance(body, dict) else None
            raise CredentialError(f"Telegram refused the token: {response.status_code} "
                                  f"{description or response.reason_phrase}")
        bot = body.get("result") or {}
        return f"Authenticated as @{bot.get('username', '?')} ({bot.get('first_name', 'bot')})"
