"""Sharing with a team: the real app, told to require sign-in, shows nothing of a project until a person signs in,
refuses a wrong password, and records who saved a mask."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import pytest
from playwright.sync_api import expect

from browser_helpers import CANVAS, drag, settle_canvas, shot, wait_idle, wait_text, wait_until
from helpers import png_bytes
from seg_core.classes import default_classes
from seg_core.services.signin import PasswordStore
from seg_core.store.project import Project
from seg_core.store.workspace import new_project

SECRET, IMAGE = "secret-orchids", "orchid_007.png"


def _project(workspace) -> Project:
    project = new_project(workspace / SECRET, default_classes(["background", "petal"]))
    project.add_image(png_bytes(np.full((120, 160), 120, np.uint8)), IMAGE)
    return project


def _nothing_of_the_project(page) -> None:
    wait_idle(page)
    body = page.locator("body")
    expect(body).not_to_contain_text(SECRET)
    expect(body).not_to_contain_text(IMAGE)
    # No page list, picker or anything else in the sidebar (after a sign-out its empty frame may stay a while).
    expect(page.locator("[data-testid='stSidebarNav']")).to_have_count(0)
    expect(page.locator("[data-testid='stSidebar'] [data-testid='stElementContainer']")).to_have_count(0)
    expect(page.locator(CANVAS)).to_have_count(0)


def _sign_in(page, name: str, password: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_nothing_before_sign_in_then_a_save_records_the_name(signin_app_server, page, workspace):
    project = _project(workspace)
    PasswordStore().set("alice", "alice's password")
    url = signin_app_server.url

    page.goto(url)
    expect(page.get_by_role("heading", name="Sign in to Maskloop")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    _nothing_of_the_project(page)
    shot(page, "signin_1_form")

    # A direct link to a page of the project shows the same form, and no page runs behind it.
    page.goto(f"{url}/annotate?project={SECRET}")
    expect(page.get_by_role("heading", name="Sign in to Maskloop")).to_be_visible()
    _nothing_of_the_project(page)
    expect(page.get_by_role("heading", name="Annotate")).to_have_count(0)

    _sign_in(page, "alice", "not her password")
    wait_text(page, "Wrong name or password.")
    _nothing_of_the_project(page)
    assert project.drafts.get(1) is None and project.image(1).mask_version == 0
    shot(page, "signin_2_refused")

    _sign_in(page, "alice", "alice's password")
    expect(page.get_by_role("heading", name="Annotate")).to_be_visible()   # the page the link asked for
    expect(page.locator("[data-testid='stSidebar']").get_by_text("Signed in as alice")).to_be_visible()
    expect(page.locator("[data-testid='stSidebarNav']")).to_have_count(1)   # what the checks above saw none of
    expect(page.locator("[data-testid='stSidebar'] [data-testid='stElementContainer']").first).to_be_visible()
    box = settle_canvas(page)
    y = box["y"] + box["height"] * 0.5
    drag(page, [(box["x"] + box["width"] * f, y) for f in (0.2, 0.35, 0.5, 0.65, 0.8)])
    wait_text(page, "Unsaved strokes")
    page.locator(".st-key-annotate_save button").click()
    wait_text(page, f"Saved the mask of {IMAGE} (version 1)")
    rec = wait_until(page, lambda: (r := project.image(1)).mask_version == 1 and r, "the saved mask in the DB")
    assert rec.mask_updated_by == "alice"
    assert project.masks.load(1)[60, 40:120].min() == 1
    expect(page.get_by_text("mask version 1 saved by alice")).to_be_visible()
    shot(page, "signin_3_saved_by_alice")

    # Signing out leaves the form, and an address bar that names no project.
    page.locator("[data-testid='stSidebar']").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Maskloop")).to_be_visible()
    _nothing_of_the_project(page)
    expect(page).not_to_have_url(re.compile(SECRET))

    # Signed-in state lives in the tab's session: a reload asks again.
    _sign_in(page, "alice", "alice's password")
    expect(page.locator("[data-testid='stSidebar']").get_by_text("Signed in as alice")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in to Maskloop")).to_be_visible()
    _nothing_of_the_project(page)


def test_no_password_set_says_which_command_to_run(signin_app_server, page, workspace):
    _project(workspace)
    page.goto(signin_app_server.url)
    wait_text(page, "Nobody can sign in yet.")
    expect(page.get_by_text("maskloop set-password --user NAME")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)
    _nothing_of_the_project(page)
    shot(page, "signin_nothing_set_up")


# ----- OIDC (st.login) against a small provider on this machine --------------------------------------------------
class FakeProvider:
    """Just enough of an OpenID Connect provider for one sign-in: discovery, authorize (signs in `email` at once),
    token (an RS256 id_token carrying the nonce) and its public key."""

    def __init__(self, email: str):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from joserfc import jwt
        from joserfc.jwk import RSAKey

        key, nonces, provider = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True), {}, self
        self.client_id, self.requests = "maskloop", []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                provider.requests.append(url.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json({"issuer": provider.url, "authorization_endpoint": provider.url + "/authorize",
                                "token_endpoint": provider.url + "/token", "jwks_uri": provider.url + "/jwks",
                                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                                "id_token_signing_alg_values_supported": ["RS256"]})
                elif url.path == "/jwks":
                    self._json({"keys": [key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    code = os.urandom(8).hex()
                    nonces[code] = q.get("nonce")
                    self.send_response(302)
                    self.send_header("Location", f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_POST(self):
                provider.requests.append(self.path)
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                now = int(time.time())
                claims = {"iss": provider.url, "sub": "ada-1", "aud": provider.client_id, "iat": now,
                          "exp": now + 600, "nonce": nonces.pop(form["code"][0]), "email": email, "name": "Ada"}
                self._json({"access_token": "at", "token_type": "Bearer", "expires_in": 600,
                            "id_token": jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def oidc_provider():
    provider = FakeProvider("ada@lab.org")
    yield provider
    provider.close()


@pytest.fixture
def oidc_server(app_server_with, oidc_provider, tmp_path):
    """The app, required to sign in, with the provider in a secrets.toml of its own (never the repo's)."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
                       f'cookie_secret = "{os.urandom(16).hex()}"\nclient_id = "{oidc_provider.client_id}"\n'
                       'client_secret = "not-so-secret"\n'
                       f'server_metadata_url = "{oidc_provider.url}/.well-known/openid-configuration"\n')
    return app_server_with({"MASKLOOP_REQUIRE_SIGNIN": "1", "STREAMLIT_SECRETS_FILES": str(secrets)})


def test_oidc_sign_in_and_the_email_saves_the_mask(oidc_server, oidc_provider, page, workspace):
    project = _project(workspace)
    page.goto(oidc_server.url)
    button = page.get_by_role("button", name="Sign in with 127.0.0.1")
    expect(button).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)   # no passwords set: OIDC only
    _nothing_of_the_project(page)
    button.click()
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_text("Signed in as ada@lab.org")).to_be_visible()
    assert oidc_provider.requests[-2:] == ["/token", "/jwks"]        # a real code exchange, a checked id_token
    page.goto(f"{oidc_server.url}/annotate?project={SECRET}")        # the identity cookie outlives a reload
    expect(page.get_by_role("heading", name="Annotate")).to_be_visible()
    page.get_by_role("button", name="Nothing to paint").click()
    # What the project recorded (the image's line), not the note above the canvas, which lives in the browser
    # session's state.
    expect(page.get_by_text(re.compile(r"mask version 1 saved by\s*ada@lab\.org"))).to_be_visible(timeout=30_000)
    assert wait_until(page, lambda: project.image(1).mask_updated_by, "the saved mask") == "ada@lab.org"
    shot(page, "signin_oidc_saved")
    sidebar.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in with 127.0.0.1")).to_be_visible()
    _nothing_of_the_project(page)
