from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from engine.netguard import Network, parse_networks
from webapp.accounts import throttle
from webapp.accounts.services import (
    AccountError,
    any_account_exists,
    authenticate,
    form_problems,
    normalize_email,
    register,
)
from webapp.errors import error_response, wants_json
from webapp.forms import Form
from webapp.sessions import ROTATE

WRONG_CREDENTIALS = "Email or password is not right."


class Credentials(Struct):
    email: str = ""
    password: str = ""


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


@lru_cache(maxsize=4)
def _trusted(value: str) -> tuple[Network, ...]:
    # "*" (every peer) is for uvicorn, which then already puts the forwarded client in request.client
    return parse_networks(",".join(item for item in value.split(",") if item != "*"), "PATCHWIRE_TRUSTED_PROXIES")


def _client_address(request: Request[Any, Any, Any]) -> str:
    trusted = _trusted(request.app.state.runtime.settings.trusted_proxies)
    peer = request.client.host if request.client else None
    return throttle.client_address(peer, request.headers.get("x-forwarded-for"), trusted)


def _limit_text(limit: throttle.Limit) -> str:
    whom = "this account" if limit is throttle.ACCOUNT else "your address"
    return (f"Too many log-in attempts for {whom}. The limit: {limit.free} attempts, then one per delay that "
            f"doubles from {limit.base:g} s up to {limit.cap / 60:g} minutes.")


def _too_many(request: Request[Any, Any, Any], page: str, context: dict[str, Any], limit: throttle.Limit,
              wait: float) -> Response[Any]:
    """429 with ``Retry-After``: the form again, saying when to try (problem+json for JSON clients)."""
    seconds = throttle.retry_after(wait)
    message = f"{_limit_text(limit)} Try again in {seconds} s."
    headers = {"Retry-After": str(seconds)}
    if wants_json(request):
        response = error_response(request, 429, "Too many attempts", message)
        response.headers.update(headers)
        return response
    return Template(page, status_code=429, headers=headers, context={**context, "errors": {"form": message}})


class AccountController(Controller):
    @get("/login", exclude_from_auth=True)
    async def login_page(self, db: NamedDependency[AsyncSession], next: FromQuery[str | None] = None) -> Template:
        return Template("accounts/login.html", context={
            "next": _safe_next(next), "errors": {}, "email": "", "first_start": not await any_account_exists(db)})

    @post("/login", exclude_from_auth=True)
    async def login(self, request: Request[Any, Any, Any], db: NamedDependency[AsyncSession],
                    data: Annotated[Credentials, Form], next: FromQuery[str | None] = None) -> Response[Any]:
        context = {"next": _safe_next(next), "email": data.email, "first_start": False}
        address = _client_address(request)
        account_key, address_key = throttle.digest(normalize_email(data.email)), throttle.digest(address)
        for limit, key in ((throttle.ADDRESS, address_key), (throttle.ACCOUNT, account_key)):
            if wait := await throttle.reserve(db, limit, key):  # refused before any hashing
                return _too_many(request, "accounts/login.html", context, limit, wait)
        user = await authenticate(db, data.email, data.password)
        if user is None:
            await throttle.record_failure(db, account_key, address)
            context["first_start"] = not await any_account_exists(db)
            return Template("accounts/login.html", status_code=400,
                            context={**context, "errors": {"form": WRONG_CREDENTIALS}})
        notice = await throttle.record_success(db, account_key, address_key)
        request.set_session({"user_id": user.id, ROTATE: True})
        if notice is not None:  # the owner hears of the failed attempts once, before going on
            return Template("accounts/notice.html", context={"notice": notice, "next": context["next"]})
        return Redirect(context["next"], status_code=303)

    @get("/register", exclude_from_auth=True)
    async def register_page(self) -> Template:
        return Template("accounts/register.html", context={"errors": {}, "email": ""})

    @post("/register", exclude_from_auth=True)
    async def register(self, request: Request[Any, Any, Any], db: NamedDependency[AsyncSession],
                       data: Annotated[Credentials, Form]) -> Response[Any]:
        context = {"email": data.email}
        if errors := form_problems(data.email, data.password):
            return Template("accounts/register.html", status_code=400, context={**context, "errors": errors})
        address_key = throttle.digest(_client_address(request))
        if wait := await throttle.reserve(db, throttle.ADDRESS, address_key):  # probing e-mails is slowed too
            return _too_many(request, "accounts/register.html", context, throttle.ADDRESS, wait)
        try:
            user = await register(db, data.email, data.password)
        except AccountError as exc:
            return Template("accounts/register.html", status_code=400, context={**context, "errors": exc.field_errors})
        await throttle.release(db, throttle.ADDRESS, address_key)
        request.set_session({"user_id": user.id, ROTATE: True})
        return Redirect("/workflows", status_code=303)  # a new account's first step: its first workflow

    @post("/logout")
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        request.clear_session()
        return Redirect("/login", status_code=303)
