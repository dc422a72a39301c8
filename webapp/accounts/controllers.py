from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.accounts.services import AccountError, authenticate, register
from webapp.forms import Form
from webapp.sessions import ROTATE


class Credentials(Struct):
    email: str = ""
    password: str = ""


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


class AccountController(Controller):
    @get("/login", exclude_from_auth=True)
    async def login_page(self, next: FromQuery[str | None] = None) -> Template:
        return Template("accounts/login.html", context={"next": _safe_next(next), "errors": {}, "email": ""})

    @post("/login", exclude_from_auth=True)
    async def login(self, request: Request[Any, Any, Any], db: NamedDependency[AsyncSession],
                    data: Annotated[Credentials, Form], next: FromQuery[str | None] = None) -> Template | Redirect:
        user = await authenticate(db, data.email, data.password)
        if user is None:
            return Template("accounts/login.html", status_code=400, context={
                "next": _safe_next(next), "email": data.email,
                "errors": {"form": "Email or password is not right."}})
        request.set_session({"user_id": user.id, ROTATE: True})
        return Redirect(_safe_next(next), status_code=303)

    @get("/register", exclude_from_auth=True)
    async def register_page(self) -> Template:
        return Template("accounts/register.html", context={"errors": {}, "email": ""})

    @post("/register", exclude_from_auth=True)
    async def register(self, request: Request[Any, Any, Any], db: NamedDependency[AsyncSession],
                       data: Annotated[Credentials, Form]) -> Template | Redirect:
        try:
            user = await register(db, data.email, data.password)
        except AccountError as exc:
            return Template("accounts/register.html", status_code=400,
                            context={"errors": exc.field_errors, "email": data.email})
        request.set_session({"user_id": user.id, ROTATE: True})
        return Redirect("/workflows", status_code=303)  # a new account's first step: its first workflow

    @post("/logout")
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        request.clear_session()
        return Redirect("/login", status_code=303)
