"""Access control: a second person gets 404 on every credential route of the first person's credential,
and a node config (form, import, paste) naming someone else's credential is refused like an unknown id —
never the credential, its name or its use."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from engine.models import Credential, Node
from tests.webapp.conftest import Browser
from tests.webapp.credential_node import registered
from tests.webapp.test_credentials_pages import create, created_id

NAME = "Owner's private key"
SECRET = "owner-secret-0ae1b2c3"


@pytest.fixture
def owned(browser: Browser) -> int:
    """The first person's header credential, used by one of their workflows."""
    browser.register("owner@example.com")
    return created_id(create(browser, "http_header", NAME, **{"public.header_name": "X-Key", "secret.value": SECRET}))


@pytest.fixture(autouse=True)
def credential_node() -> Any:
    with registered():
        yield


def credential_routes(credential_id: int, app_paths: set[str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    routes = [
        ("get", f"/credentials/{credential_id}", None),
        ("post", f"/credentials/{credential_id}", {"name": "pwned", "public.header_name": "X-Pwned", "secret.value": "x"}),
        ("post", f"/credentials/{credential_id}/test", None),
        ("post", f"/credentials/{credential_id}/delete", None),
    ]
    # the OAuth routes (webapp/credentials/oauth.py) on an id are covered the day they exist
    routes += [("get", path.replace("{credential_id:int}", str(credential_id)), None)
               for path in sorted(app_paths) if path.startswith("/credentials/{credential_id:int}/")
               and path.rsplit("/", 1)[1] not in ("test", "delete")]
    return routes


def test_every_credential_route_is_404_for_another_person(client: TestClient[Any], browser: Browser,
                                                          second_browser: Browser, owned: int, db_call: Any) -> None:
    second_browser.register("intruder@example.com")
    paths = {route.path for route in client.app.routes}
    for method, url, data in credential_routes(owned, paths):
        for htmx in (True, False):
            kw: dict[str, Any] = {"htmx": htmx} if method == "post" else {}
            response = getattr(second_browser, method)(url, **({"data": data} if data else {}), **kw)
            assert response.status_code == 404, f"{method.upper()} {url} gave {response.status_code}"
            assert NAME not in response.text and SECRET not in response.text
    # a missing id reads the same
    missing = second_browser.get("/credentials/999999")
    assert missing.status_code == 404
    def main(page: str) -> str:
        return re.search(r"<main.*</main>", page, re.S).group(0)
    assert main(missing.text) == main(second_browser.get(f"/credentials/{owned}").text)
    # the list, the chooser and the picker's options show nothing of it
    for url in ("/credentials", "/credentials/options?field=credential&types=http_header&credential=" + str(owned)):
        page = second_browser.get(url)
        assert page.status_code == 200 and NAME not in page.text
    row = db_call(lambda db: db.get(Credential, owned))
    assert (row.name, row.public) == (NAME, {"header_name": "X-Key"})  # unchanged, not deleted
    assert browser.get(f"/credentials/{owned}").status_code == 200


def test_routes_need_a_login_and_csrf(client: TestClient[Any], browser: Browser, owned: int) -> None:
    client.cookies.clear()
    anonymous = client.get(f"/credentials/{owned}", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]
    assert client.get("/credentials", follow_redirects=False).status_code in (302, 303)
    # logged in, but without the CSRF token: refused, nothing changed
    browser.client.cookies = browser.cookies
    forged = browser.client.post(f"/credentials/{owned}/delete")
    assert forged.status_code == 403
    assert browser.get(f"/credentials/{owned}").status_code == 200


def test_a_node_naming_another_persons_credential_is_refused(browser: Browser, second_browser: Browser,
                                                             owned: int, db_call: Any) -> None:
    second_browser.register("intruder@example.com")
    workflow_id = second_browser.create_workflow("Mine")
    node_id = second_browser.add_node(workflow_id, "test_credential_call")
    response = second_browser.configure(workflow_id, node_id, {"name": "Call", "url": "https://example.com",
                                                               "credential": str(owned)})
    assert response.status_code == 422
    assert f"Credential {owned} not found." in response.text and NAME not in response.text
    missing = second_browser.configure(workflow_id, node_id, {"name": "Call", "url": "https://example.com",
                                                              "credential": "999999"})
    assert "Credential 999999 not found." in missing.text
    config = db_call(lambda db: db.scalar(select(Node.config).where(Node.id == node_id)))
    assert config.get("credential") is None
    # the owner may use it — and the node's picker lists it
    own_workflow = browser.create_workflow("Owner's")
    own_node = browser.add_node(own_workflow, "test_credential_call")
    saved = browser.configure(own_workflow, own_node, {"name": "Call", "url": "https://example.com",
                                                       "credential": str(owned)})
    assert saved.status_code == 200 and re.search(rf'<option value="{owned}" selected>{re.escape(NAME)}', saved.text.replace("&#39;", "'"))


def test_a_credential_of_a_type_the_node_does_not_accept_is_refused(browser: Browser, owned: int) -> None:
    smtp = created_id(create(browser, "smtp", "Mail server", **{"public.host": "smtp.example.com", "public.port": "587",
                                                               "public.security": "starttls", "secret.password": "pw-1234"}))
    workflow_id = browser.create_workflow("Types")
    node_id = browser.add_node(workflow_id, "test_credential_call")
    panel = browser.get(f"/workflows/{workflow_id}/nodes/{node_id}").text
    assert f'<option value="{owned}"' in panel and f'<option value="{smtp}"' not in panel  # filtered by type
    response = browser.configure(workflow_id, node_id, {"name": "Call", "url": "https://example.com",
                                                        "credential": str(smtp)})
    assert response.status_code == 422
    assert "“Mail server” is a SMTP credential; this node accepts: API key (header), Bearer token, Basic auth." \
        in response.text.replace("&#34;", '"')


def import_document(credential: Any) -> str:
    return json.dumps({"format": "patchwire.workflow", "format_version": 1, "name": "Imported", "nodes": [
        {"id": "start", "type": "manual_trigger", "name": "Start"},
        {"id": "call", "type": "test_credential_call", "name": "Call", "config": {"credential": credential}}],
        "connections": [{"source": "start", "target": "call"}]})


def test_import_and_paste_of_another_persons_credential_id_are_refused(
        browser: Browser, second_browser: Browser, owned: int, db_call: Any) -> None:
    second_browser.register("intruder@example.com")
    before = db_call(lambda db: db.scalar(select(Node.id).order_by(Node.id.desc()).limit(1)))
    response = second_browser.post("/workflows/import", {"document": import_document(owned), "format": "auto"},
                                   files={"file": ("", b"", "application/octet-stream")})
    assert response.status_code == 422 and f"credential {owned} not found" in response.text
    assert NAME not in response.text
    workflow_id = second_browser.create_workflow("Paste target")
    pasted = second_browser.post(f"/workflows/{workflow_id}/paste", {"document": import_document(owned)})
    assert pasted.status_code == 422 and f"credential {owned} not found" in pasted.text and NAME not in pasted.text
    assert db_call(lambda db: db.scalar(select(Node.id).order_by(Node.id.desc()).limit(1))) == before
    # the owner pastes their own id: accepted
    own = browser.create_workflow("Owner paste")
    assert browser.post(f"/workflows/{own}/paste", {"document": import_document(owned)}).status_code == 201


def test_the_pickers_refresh_lists_the_owners_credentials_of_the_accepted_types(browser: Browser, owned: int) -> None:
    bearer = created_id(create(browser, "http_bearer", "A bearer", **{"secret.token": "bearer-token-5678"}))
    smtp = created_id(create(browser, "smtp", "Mail", **{"public.host": "smtp.example.com", "public.port": "587",
                                                        "public.security": "starttls", "secret.password": "pw-1234"}))
    partial = browser.get(f"/credentials/options?field=credential&types=http_header,http_bearer&credential={bearer}")
    assert partial.status_code == 200 and 'id="cfg-credential-picker"' in partial.text
    assert f'<option value="{bearer}" selected>A bearer (Bearer token)</option>' in partial.text
    assert f'<option value="{owned}" >' in partial.text and f'value="{smtp}"' not in partial.text
    assert 'href="/credentials/new?accept=http_header%2Chttp_bearer"' in partial.text
    single = browser.get("/credentials/options?field=credential&types=http_bearer").text
    assert 'href="/credentials/new?type=http_bearer"' in single and f'value="{owned}"' not in single
    assert f'value="{owned}"' not in browser.get("/credentials/options?field=credential&types=nope").text
