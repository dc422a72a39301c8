"""Small request helpers shared by the controllers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import Body

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def multidict(form: Any) -> dict[str, list[str]]:
    return {key: form.getall(key) for key in form}
