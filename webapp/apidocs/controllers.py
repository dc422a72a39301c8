"""``/api/openapi.json`` (the hand-written document of webapp/apidocs/document.py) and ``/api/docs`` (Swagger UI,
vendored in static/vendor/swagger-ui/, started by static/js/api-docs.js). Both are public, as the API they
describe is: the document names no workflow, webhook or user of this instance (docs/api.md)."""

from __future__ import annotations

import functools
import importlib.metadata

import msgspec
from litestar import Controller, Response, get
from litestar.response import Redirect, Template

from webapp.apidocs.document import openapi_document


@functools.cache
def _document() -> bytes:
    try:
        version = importlib.metadata.version("patchwire")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return msgspec.json.encode(openapi_document(version))


class ApiDocsController(Controller):
    path = "/api"
    include_in_schema = False

    @get("/openapi.json", exclude_from_auth=True, sync_to_thread=False, name="api-openapi")
    def openapi(self) -> Response[bytes]:
        return Response(_document(), media_type="application/json", headers={"Cache-Control": "no-cache"})

    @get("/docs", exclude_from_auth=True, sync_to_thread=False, name="api-docs")
    def docs(self) -> Template:
        return Template("apidocs/docs.html", context={})

    @get("/", exclude_from_auth=True, sync_to_thread=False)
    def index(self) -> Redirect:
        return Redirect("/api/docs")
