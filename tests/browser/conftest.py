"""Real-browser fixtures: the app under `streamlit run` on a free localhost port, driven by Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import ARTIFACTS, ROOT, require

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SERVER_START_S = 90
EXPECT_TIMEOUT_MS = 30_000


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def browser():
    exe = _chromium()
    require(exe is not None, "Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (pip install -e '.[test]')")
    # expect() waits 5 s by default: too short for a rerun on a busy 2-core CI machine.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class AppServer:
    def __init__(self, workspace: Path, log: Path, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "MASKLOOP_WORKSPACE": str(workspace), "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log_file = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(self.port),
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not become healthy; see {self.log}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log_file.close()


@pytest.fixture
def app_server_with(workspace: Path, request):
    """Start the app with extra environment variables: `app_server_with({"NAME": "value"})`; stopped after."""
    servers: list[AppServer] = []

    def start(env: dict[str, str] | None = None) -> AppServer:
        ARTIFACTS.mkdir(exist_ok=True)
        servers.append(AppServer(workspace, ARTIFACTS / f"{request.node.name}.server.log", env))
        servers[-1].wait_healthy()
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def app_server(app_server_with) -> AppServer:
    return app_server_with()


@pytest.fixture
def signin_app_server(app_server_with) -> AppServer:
    """The app on 127.0.0.1 told to ask everyone to sign in, as it does on a network address."""
    return app_server_with({"MASKLOOP_REQUIRE_SIGNIN": "1"})


def _page(browser, request, suffix: str = ""):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}{suffix}.final.png"), full_page=True)
    except Exception:
        pass
    context.close()


@pytest.fixture
def page(browser, request):
    yield from _page(browser, request)


@pytest.fixture
def second_page(browser, request):
    """Another browser context: a second tab or a second person on the same app."""
    yield from _page(browser, request, ".second")
