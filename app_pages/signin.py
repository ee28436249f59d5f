"""The sign-in gate app.py puts before every page: while the app is shared beyond this machine (or told to ask), a
person sees only this form until they sign in, with a password (`maskloop set-password`) or an OIDC provider."""

from __future__ import annotations

from urllib.parse import urlparse

import streamlit as st

from app_pages.widgets import SIGNED_IN_KEY, current_user
from seg_core.services import signin

REFUSAL_KEY = "signin_refusal"
NOTHING_SET_UP = (
    "Nobody can sign in yet. Maskloop asks everyone to sign in here, because it is reachable from the network "
    "(or MASKLOOP_REQUIRE_SIGNIN is set), and no password or sign-in provider is set up. On the machine that runs "
    f"it, run `{signin.SET_PASSWORD_COMMAND}` (with the same MASKLOOP_WORKSPACE as the app), then reload this page.")


def required() -> bool:
    return signin.signin_required(st.get_option("server.address"))


def _auth_section() -> dict:
    """The `[auth]` section of .streamlit/secrets.toml, or {} (no secrets file, or no such section)."""
    try:
        section = st.secrets.get("auth") if "auth" in st.secrets else None
    except FileNotFoundError:   # no secrets file, or one Streamlit cannot parse (its error is one): no OIDC then
        return {}
    return dict(section) if hasattr(section, "keys") else {}


def providers() -> list[tuple[str | None, str]]:
    """(provider for st.login, label) for each OIDC provider configured: [auth] itself and any [auth.NAME]."""
    auth = _auth_section()
    found = [(None, _label(auth))] if auth.get("client_id") else []
    found += [(name, name.replace("-", " ").title()) for name, sub in auth.items()
              if hasattr(sub, "keys") and "client_id" in sub]
    return found if auth.get("redirect_uri") and auth.get("cookie_secret") else []


def _label(section) -> str:
    host = urlparse(str(section.get("server_metadata_url", ""))).hostname or "your sign-in provider"
    return {"accounts.google.com": "Google", "login.microsoftonline.com": "Microsoft"}.get(host, host)


def signed_in() -> bool:
    """May this browser session see the pages? Always, where sign-in is not required. A name whose password was
    removed (`maskloop set-password --remove`) is signed out at its next click."""
    if not required():
        return True
    name = st.session_state.get(SIGNED_IN_KEY)
    if name:
        try:
            if name in signin.PasswordStore().users():
                return True
        except signin.SignInError:
            pass   # a damaged file lets nobody in; the form says why
        st.session_state.pop(SIGNED_IN_KEY, None)
    return bool(providers()) and bool(st.user.get("is_logged_in"))


def _submit(store: signin.PasswordStore) -> None:
    ss = st.session_state
    name, password = ss.get("signin_name", ""), ss.get("signin_password", "")
    ss["signin_password"] = ""   # never kept in the session past this check
    try:
        refusal = signin.attempt(store, name, password)
    except signin.SignInError as exc:
        refusal = str(exc)
    if refusal is None:
        ss.pop(REFUSAL_KEY, None)
        ss[SIGNED_IN_KEY] = name.strip()
    else:
        ss[REFUSAL_KEY] = refusal


def sign_in_form() -> None:
    """The only thing shown before sign-in: no sidebar, no page, no project name."""
    with st.columns([1, 1.4, 1])[1]:   # a form of a readable width on the wide layout
        _form()


def _form() -> None:
    st.title("Sign in to Maskloop")
    oidc = providers()
    store = signin.PasswordStore()
    try:
        has_passwords = store.configured()
    except signin.SignInError as exc:
        st.error(str(exc), icon="⚠️")
        has_passwords = False
    if not oidc and not has_passwords:
        if store.path.exists():
            return   # a damaged file: its sentence above says what to do
        st.error(NOTHING_SET_UP, icon="🔒")
        return
    for provider, label in oidc:
        st.button(f"Sign in with {label}", on_click=st.login, args=(provider,) if provider else (),
                  key=f"signin_oidc_{provider or 'default'}", type="primary")
    if has_passwords:
        with st.form("signin_form", enter_to_submit=True):
            st.text_input("Name", key="signin_name", autocomplete="username")
            st.text_input("Password", type="password", key="signin_password", autocomplete="current-password")
            st.form_submit_button("Sign in", type="primary", on_click=_submit, args=(store,))
        refusal = st.session_state.get(REFUSAL_KEY)
        if refusal:
            st.error(refusal, icon="🔒")
    st.caption("Signing in lasts while this tab is open" + (": a reload asks again." if has_passwords else "."))


def _plain(text: str) -> str:
    """A name shown as itself inside markdown (an OIDC name claim can hold any character)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+-.!|~$:" else ch for ch in text)


def _sign_out() -> None:
    st.session_state.clear()
    st.query_params.clear()   # the address bar named the project and image


def sign_out_button() -> None:
    """In the sidebar, for whoever signed in (nothing where sign-in is not required)."""
    name = st.session_state.get(SIGNED_IN_KEY)
    oidc_user = not name and st.user.get("is_logged_in")
    if not name and not oidc_user:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{_plain(current_user())}**")
        if oidc_user:
            st.button("Sign out", key="signout", on_click=lambda: (_sign_out(), st.logout()))
        else:
            st.button("Sign out", key="signout", on_click=_sign_out)
