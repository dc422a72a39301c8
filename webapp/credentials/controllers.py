"""The Credentials pages. Thin: the rules live in ``CredentialService`` (webapp/credentials/services.py).

Every route needs a login (the app's session auth) and CSRF on POST (the app's CSRF config); an id of
someone else's credential is the same 404 as an id that does not exist. The OAuth routes (connect,
callback) are in webapp/credentials/oauth.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from engine.config import FieldSpec, field_specs
from engine.credentials.types import CredentialType
from engine.errors import ConfigError, CredentialInUse
from engine.models import Credential
from webapp.credentials.services import (
    GROUPS,
    NOT_CONNECTED,
    CredentialService,
    connectable,
    form_fields,
    group_of,
    read_form,
    shown_fields,
)
from webapp.errors import wants_json
from webapp.forms import is_htmx, multidict
from webapp.runtime import Runtime


def _form_context(credential_type: type[CredentialType], *, credential: Credential | None = None,
                  name: str = "", values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
                  set_fields: set[str] | frozenset[str] = frozenset(), **extra: Any) -> dict[str, Any]:
    return {"credential_type": credential_type, "credential": credential, "name": name, "values": values or {},
            "errors": errors or {}, "set_fields": set_fields, "connectable": connectable(credential_type),
            "has_test": credential_type().has_test,
            "public_fields": _prefixed(form_fields(credential_type, secret=False), "public"),
            "secret_fields": _prefixed(form_fields(credential_type, secret=True), "secret"),
            "form_names": {s.name for s in [*field_specs(credential_type.Public), *field_specs(credential_type.Secret)]},
            "shown_fields": shown_fields(credential_type),
            "never_connected": credential is not None and credential.status_message == NOT_CONNECTED, **extra}


def _prefixed(specs: list[FieldSpec], prefix: str) -> list[tuple[str, FieldSpec]]:
    """(field name, the spec named ``<prefix>.<field>`` as the form posts it): public and secret fields never collide."""
    return [(spec.name, replace(spec, name=f"{prefix}.{spec.name}")) for spec in specs]


def _accepted(text: str | None) -> list[str]:
    return [t for t in (text or "").split(",") if t][:20]


class CredentialController(Controller):
    path = "/credentials"

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], credentials: NamedDependency[CredentialService]) -> Template:
        rows = await credentials.list()
        return Template("credentials/list.html", context={
            "user": request.user, "credentials": rows, "types": {c.id: credentials.type_of(c) for c in rows}})

    @get("/new")
    async def new(self, request: Request[Any, Any, Any], credentials: NamedDependency[CredentialService]) -> Template:
        type_name = request.query_params.get("type")
        if type_name:
            credential_type = credentials.credential_type(type_name)
            return Template("credentials/form.html", context={
                "user": request.user, **_form_context(credential_type, name=credential_type.title)})
        accepted = _accepted(request.query_params.get("accept"))
        types = [t for t in credentials.registry.all() if not accepted or t.type_name in accepted]
        groups = [(title, [t for t in types if group_of(t) == key]) for key, title in GROUPS]
        return Template("credentials/choose.html", context={
            "user": request.user, "groups": [(title, ts) for title, ts in groups if ts]})

    @post("/")
    async def create(self, request: Request[Any, Any, Any],
                     credentials: NamedDependency[CredentialService]) -> Template | Redirect:
        form = multidict(await request.form())
        type_name = (form.get("type") or [""])[-1]
        credential_type = credentials.credential_type(type_name)
        try:
            credential, _ = await credentials.create(type_name, form)
        except ConfigError as exc:
            if wants_json(request):
                raise  # problem+json with the fields (webapp/errors.py)
            submitted = read_form(credential_type, form)  # what was typed, secret values left out
            return Template("credentials/form.html", status_code=422, context={
                "user": request.user, **_form_context(credential_type, name=submitted.name,
                                                      values=submitted.public, errors=exc.field_errors)})
        if connectable(credential_type):
            # Not a redirect to /connect: that chain would end at the provider's origin, and a browser refuses a
            # form submission whose redirects leave for another origin (our CSP's form-action 'self'). The page
            # continues to /connect by itself (a meta refresh is a new navigation, not the form's).
            return Redirect(f"/credentials/{credential.id}?created=1&connect=1", status_code=303)
        return Redirect(f"/credentials/{credential.id}?created=1", status_code=303)

    @get("/options")
    async def options(self, request: Request[Any, Any, Any], credentials: NamedDependency[CredentialService]) -> Template:
        """The node form's credential picker, with fresh options (its "Refresh" control)."""
        field = request.query_params.get("field") or "credential"
        accepted = [t for t in _accepted(request.query_params.get("types")) if credentials.registry.has(t)]
        selected = request.query_params.get(field) or ""
        return Template("credentials/_picker_partial.html", context={
            "field_name": field, "accepted": accepted, "value": int(selected) if selected.isdigit() else None,
            "choices": await credentials.list(accepted) if accepted else [],
            "titles": {t.type_name: t.title for t in credentials.registry.all()}})

    @get("/{credential_id:int}")
    async def detail(self, request: Request[Any, Any, Any], credentials: NamedDependency[CredentialService],
                     credential_id: FromPath[int]) -> Template:
        credential = await credentials.get(credential_id)
        flags = {key: request.query_params.get(key) == "1" for key in ("created", "saved", "connected", "connect")}
        return await _detail(request, credentials, credential, **flags)

    @post("/{credential_id:int}")
    async def update(self, request: Request[Any, Any, Any], credentials: NamedDependency[CredentialService],
                     credential_id: FromPath[int]) -> Template | Redirect:
        form = multidict(await request.form())
        try:
            await credentials.update(credential_id, form)
        except ConfigError as exc:
            if wants_json(request):
                raise
            credential = await credentials.get(credential_id)
            credential_type = credentials.type_of(credential)
            submitted = None
            if credential_type is not None:
                submitted = read_form(credential_type, form)
            return await _detail(request, credentials, credential, errors=exc.field_errors, status_code=422,
                                 name=submitted.name if submitted else credential.name,
                                 values={**credential.public, **(submitted.public if submitted else {})})
        return Redirect(f"/credentials/{credential_id}?saved=1", status_code=303)

    @post("/{credential_id:int}/test")
    async def test(self, request: Request[Any, Any, Any], credentials: NamedDependency[CredentialService],
                   runtime: NamedDependency[Runtime], credential_id: FromPath[int]) -> Template:
        passed, message = await credentials.test(credential_id, runtime.http, runtime.settings.provider_env,
                                                 runtime.sessions)
        credential = await credentials.get(credential_id)  # a failed OAuth test may have marked it needs_reconnect
        context = {"passed": passed, "message": message, "credential_id": credential_id, "credential": credential}
        if is_htmx(request):
            return Template("credentials/_test_result.html", context=context, status_code=200 if passed else 422)
        return await _detail(request, credentials, credential, test_result=context,
                             status_code=200 if passed else 422)

    @post("/{credential_id:int}/delete")
    async def delete(self, request: Request[Any, Any, Any], credentials: NamedDependency[CredentialService],
                     credential_id: FromPath[int]) -> Template | Redirect | Response[Any]:
        try:
            await credentials.delete(credential_id)
        except CredentialInUse as exc:
            if wants_json(request):
                raise  # problem+json naming the workflows (webapp/errors.py)
            await credentials.db.rollback()
            credential = await credentials.get(credential_id)
            return await _detail(request, credentials, credential, in_use=list(exc.workflows), status_code=409)
        if is_htmx(request):
            return Response("", status_code=200, headers={"HX-Redirect": "/credentials?deleted=1"})
        return Redirect("/credentials?deleted=1", status_code=303)


async def _detail(request: Request[Any, Any, Any], credentials: CredentialService, credential: Credential, *,
                  status_code: int = 200, name: str | None = None, values: dict[str, Any] | None = None,
                  errors: dict[str, str] | None = None, **extra: Any) -> Template:
    """The credential's page: its status, the edit form, Test, Connect / Reconnect, where it is used, Delete."""
    credential_type = credentials.type_of(credential)
    usage = await credentials.usage(credential.id)
    context: dict[str, Any] = {"user": request.user, "credential": credential, "usage": usage, **extra}
    if credential_type is None:
        return Template("credentials/unknown_type.html", status_code=status_code, context=context)
    set_fields, open_error = await credentials.secret_fields_set(credential)
    return Template("credentials/form.html", status_code=status_code, context={
        **context, **_form_context(credential_type, credential=credential,
                                   name=credential.name if name is None else name,
                                   values=credential.public if values is None else values,
                                   errors=errors, set_fields=set_fields, open_error=open_error)})
