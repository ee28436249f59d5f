"""The sign-in gate in app.py, through AppTest: required or not, nothing of a project before sign-in, the names that
masks record."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from helpers import ROOT, page_texts, photo, png_bytes
from seg_core.classes import default_classes
from seg_core.services import signin
from seg_core.services.signin import PasswordStore
from seg_core.store.project import Project
from seg_core.store.workspace import new_project

SECRET = "secret-orchids"


@pytest.fixture
def project(workspace) -> Project:
    p = new_project(workspace / SECRET, default_classes(["background", "petal"]))
    p.add_image(png_bytes(photo(40, 50, seed=3)), "orchid_007.png")
    return p


@pytest.fixture
def app(monkeypatch, project):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(signin.GUARD, "delay_s", 0.0)
    monkeypatch.setattr(signin.GUARD, "_failures", {})
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


@pytest.fixture
def required(monkeypatch):
    monkeypatch.setenv(signin.REQUIRE_ENV, "1")


@pytest.fixture
def alice(workspace):
    PasswordStore().set("alice", "alice's password")


def everything(at) -> str:
    """Every text of the run, the sidebar's too, with widget labels and values."""
    parts = [page_texts(at)] + [t.value for t in at.title] + [t.value for t in at.header]
    parts += [w.label for w in at.button] + [f"{w.label}={w.value}" for w in at.selectbox]
    parts += [w.label for w in at.text_input]
    return "\n".join(str(p) for p in parts)


def sign_in(at, name: str, password: str):
    at.text_input(key="signin_name").input(name)
    at.text_input(key="signin_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception, at.exception
    return at


def test_required_without_any_password_says_how_and_shows_nothing_else(app, required):
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "Nobody can sign in yet. Maskloop asks everyone to sign in here, because it is reachable from the network "
        "(or MASKLOOP_REQUIRE_SIGNIN is set), and no password or sign-in provider is set up. On the machine that "
        "runs it, run `maskloop set-password --user NAME` (with the same MASKLOOP_WORKSPACE as the app), then reload "
        "this page."]
    assert [t.value for t in app.title] == ["Sign in to Maskloop"]
    assert len(app.sidebar) == 0 and len(app.text_input) == 0 and len(app.button) == 0
    assert SECRET not in everything(app)


def test_required_with_a_password_asks_for_it_and_refuses_a_wrong_one(app, required, alice):
    app.run()
    assert [w.label for w in app.text_input] == ["Name", "Password"]
    assert len(app.sidebar) == 0 and SECRET not in everything(app) and "orchid" not in everything(app)
    sign_in(app, "alice", "not her password")
    assert [e.value for e in app.error] == ["Wrong name or password."]
    assert app.text_input(key="signin_password").value == ""      # not kept in the session
    assert len(app.sidebar) == 0 and SECRET not in everything(app)
    sign_in(app, "mallory", "alice's password")
    assert [e.value for e in app.error] == ["Wrong name or password."]


def test_the_right_password_opens_the_pages_and_sign_out_closes_them(app, required, alice):
    app.run()
    sign_in(app, " alice ", "alice's password")
    assert not app.error
    assert f"**{SECRET}**" in page_texts(app)                       # the Home page lists the project
    assert "Signed in as **alice**" in [c.value for c in app.sidebar.caption]
    next(b for b in app.sidebar.button if b.label == "Sign out").click().run()
    assert [t.value for t in app.title] == ["Sign in to Maskloop"]
    assert len(app.sidebar) == 0 and SECRET not in everything(app)
    assert "signin_user" not in app.session_state and "project_path" not in app.session_state


def test_removing_a_password_signs_that_person_out(app, required, alice):
    app.run()
    sign_in(app, "alice", "alice's password")
    assert f"**{SECRET}**" in page_texts(app)
    PasswordStore().remove("alice")
    app.run()
    assert [t.value for t in app.title] == ["Sign in to Maskloop"] and SECRET not in everything(app)


def test_a_damaged_password_file_lets_nobody_in_and_says_so(app, required, workspace):
    path = workspace / ".maskloop" / "passwords.json"
    path.parent.mkdir()
    path.write_text("{half a file")
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        f"The password file {path} is damaged (it is not JSON). Move it away, then set the passwords again with "
        "`maskloop set-password --user NAME`."]
    assert not app.text_input and len(app.sidebar) == 0 and SECRET not in everything(app)


def test_many_wrong_passwords_lock_the_name_for_a_while(app, required, alice):
    app.run()
    for _ in range(signin.GUARD.max_failures):
        sign_in(app, "alice", "a guess!")
    sign_in(app, "alice", "alice's password")
    assert app.error[0].value.startswith("Too many wrong passwords for this name: try again in")
    assert SECRET not in everything(app)


def test_a_direct_page_link_shows_the_form_and_runs_no_page(app, required, alice, project):
    app.query_params["project"] = SECRET
    app.session_state["project_path"] = str(project.path)   # even a session that names a project
    app.run()
    app.switch_page("app_pages/annotate.py").run()
    assert not app.exception
    assert [t.value for t in app.title] == ["Sign in to Maskloop"]
    assert "orchid_007.png" not in everything(app) and len(app.sidebar) == 0
    sign_in(app, "alice", "alice's password")       # then the page asked for opens
    assert [t.value for t in app.title] == ["Annotate"]
    assert "orchid_007.png" in page_texts(app)


def test_loopback_needs_no_sign_in(app, monkeypatch):
    monkeypatch.delenv(signin.REQUIRE_ENV, raising=False)
    assert st.get_option("server.address") == "127.0.0.1"   # .streamlit/config.toml
    app.run()
    assert not app.exception and "Sign in to Maskloop" not in everything(app)
    assert f"**{SECRET}**" in page_texts(app) and not app.sidebar.button


@pytest.mark.parametrize("address", ["0.0.0.0", ""])
def test_a_network_address_requires_sign_in_without_the_setting(app, monkeypatch, address):
    monkeypatch.delenv(signin.REQUIRE_ENV, raising=False)
    before = st.get_option("server.address")
    st.config.set_option("server.address", address)
    try:
        app.run()
    finally:
        st.config.set_option("server.address", before)
    assert [t.value for t in app.title] == ["Sign in to Maskloop"] and SECRET not in everything(app)


OIDC = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                 "client_id": "maskloop", "client_secret": "s3cret",
                 "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration"}}


def test_an_oidc_provider_offers_its_button(app, required):
    app.secrets = OIDC
    app.run()
    assert [b.label for b in app.button] == ["Sign in with Google"] and not app.text_input
    assert not app.error and SECRET not in everything(app)


def test_an_oidc_user_is_in_and_saves_masks_under_their_email(app, required, project):
    app.secrets = OIDC
    app.user = {"is_logged_in": True, "email": "ada@lab.org", "name": "Ada"}
    app.session_state["project_path"] = str(project.path)
    app.run()
    assert "Signed in as **ada@lab\\.org**" in [c.value for c in app.sidebar.caption]
    app.switch_page("app_pages/annotate.py").run()
    app.button(key="annotate_all_background").click().run()
    assert not app.exception
    assert project.image(1).mask_updated_by == "ada@lab.org"


def test_a_signed_in_save_records_the_name_and_annotate_shows_it(app, required, alice, project):
    app.session_state["project_path"] = str(project.path)
    app.run()
    sign_in(app, "alice", "alice's password")
    app.switch_page("app_pages/annotate.py").run()
    app.button(key="annotate_all_background").click().run()
    assert not app.exception
    rec = project.image(1)
    assert rec.mask_version == 1 and rec.mask_updated_by == "alice"
    assert any("mask version 1 saved by alice" in c.value for c in app.caption)


def test_without_sign_in_masks_are_saved_by_user_as_before(app, monkeypatch, project):
    monkeypatch.delenv(signin.REQUIRE_ENV, raising=False)
    app.session_state["project_path"] = str(project.path)
    app.run()
    app.switch_page("app_pages/annotate.py").run()
    app.button(key="annotate_all_background").click().run()
    assert project.image(1).mask_updated_by == "user"
