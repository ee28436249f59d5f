"""Who may use the app: when sign-in is required, the team's passwords (scrypt hashes, 0600 file), slowed guessing."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from seg_core import environment
from seg_core.errors import SegError
from seg_core.durable import atomic_write
from seg_core.store.layout import workspace_dir

REQUIRE_ENV = environment.name(environment.REQUIRE_SIGNIN)
PASSWORDS_DIR, PASSWORDS_FILE = ".maskloop", "passwords.json"
FILE_FORMAT, FILE_VERSION = "maskloop-passwords", 1
# Where a workspace made before the product was called Maskloop keeps its passwords, and that file's format name:
# read and written in place, so its team signs in as before.
FORMER_PASSWORDS_DIR, FORMER_FILE_FORMAT = ".segstudio", "segstudio-passwords"
# scrypt as RFC 7914 recommends for interactive logins (16 MiB; about a tenth of a second a check); the
# parameters are stored with each hash, so raising them later leaves the old hashes readable.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, KEY_BYTES = 2 ** 14, 8, 1, 16, 32
MAX_SCRYPT_N = 2 ** 20
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@+\-]{0,63}$")
SET_PASSWORD_COMMAND = "maskloop set-password --user NAME"
WRONG = "Wrong name or password."


class SignInError(SegError):
    """The password file cannot be used, or a name or password cannot be set."""


def is_loopback(address: str | None) -> bool:
    """Only this machine can reach an app bound to `address`: 127.0.0.0/8, ::1 or localhost. An empty address
    means every interface, and any other name may resolve to the network: neither is loopback."""
    text = (address or "").strip().strip("[]").lower()
    if text in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def explicitly_required(env: Mapping[str, str] | None = None) -> bool:
    value = environment.get(environment.REQUIRE_SIGNIN, "") if env is None else env.get(REQUIRE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def signin_required(address: str | None, env: Mapping[str, str] | None = None) -> bool:
    """Sign-in is required when the app listens beyond this machine, or when MASKLOOP_REQUIRE_SIGNIN=1 (e.g.
    behind a reverse proxy on the same machine). Nothing turns it off for a network address."""
    return explicitly_required(env) or not is_loopback(address)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """'scrypt:N:r:p$<salt hex>$<key hex>' with a fresh random salt."""
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, KEY_BYTES)
    return f"scrypt:{n}:{r}:{p}${salt.hex()}${key.hex()}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=256 * n * r * p + 2 ** 20)


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    head, salt, key = stored.split("$")
    kind, n, r, p = head.split(":")
    n, r, p = int(n), int(r), int(p)
    if kind != "scrypt" or n < 2 or n & (n - 1) or n > MAX_SCRYPT_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError(f"unsupported hash {head!r}")
    salt_b, key_b = bytes.fromhex(salt), bytes.fromhex(key)
    if len(salt_b) < 8 or len(key_b) < 16:
        raise ValueError("salt or key too short")
    return n, r, p, salt_b, key_b


def verify_password(password: str, stored: str) -> bool:
    n, r, p, salt, key = _parse_hash(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(key)), key)


@functools.cache
def _dummy_hash() -> str:
    """A name that has no password still costs one scrypt, so the time taken does not tell which names exist."""
    return hash_password(os.urandom(16).hex())


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME_RE.match(name):
        raise SignInError(f"'{name}' cannot be a user name: use up to 64 letters, digits, spaces, '.', '_', '@', "
                          "'+' or '-', starting with a letter or digit.")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise SignInError(f"That password is too short: use at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise SignInError(f"That password is too long: use at most {MAX_PASSWORD} characters.")
    return password


def passwords_file(workspace: str | Path | None = None) -> Path:
    """<workspace>/.maskloop/passwords.json: beside the projects it guards, never in the code's folder (a workspace
    that has only the former .segstudio/passwords.json keeps using that one)."""
    root = Path(workspace or workspace_dir())
    path, former = root / PASSWORDS_DIR / PASSWORDS_FILE, root / FORMER_PASSWORDS_DIR / PASSWORDS_FILE
    return former if not path.exists() and former.exists() else path


class PasswordStore:
    """The team's names and password hashes in one JSON file, rewritten whole (atomic_write) with mode 0600."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else passwords_file()

    def _damaged(self, detail: str) -> SignInError:
        return SignInError(f"The password file {self.path} is damaged ({detail}). Move it away, then set the "
                           f"passwords again with `{SET_PASSWORD_COMMAND}`.")

    def _read(self) -> dict[str, str]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise SignInError(f"The password file {self.path} cannot be read ({exc.strerror or exc}).") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._damaged("it is not JSON") from exc
        ours = isinstance(data, dict) and data.get("format") in (FILE_FORMAT, FORMER_FILE_FORMAT)
        if not ours or not isinstance(data.get("users"), dict):
            raise self._damaged("it is not a Maskloop password file")
        if data.get("version") != FILE_VERSION:
            raise self._damaged(f"version {data.get('version')!r}; this Maskloop reads version {FILE_VERSION}")
        users = data["users"]
        for name, stored in users.items():
            try:
                _parse_hash(stored)
            except (AttributeError, TypeError, ValueError) as exc:
                raise self._damaged(f"the entry for '{name}' is not a password hash") from exc
        return users

    def _write(self, users: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = {"format": FILE_FORMAT, "version": FILE_VERSION, "users": dict(sorted(users.items()))}
        atomic_write(self.path, (json.dumps(body, indent=1) + "\n").encode("utf-8"))
        os.chmod(self.path, 0o600)   # the temporary file was 0600 already (mkstemp); say so plainly

    def users(self) -> list[str]:
        return sorted(self._read())

    def configured(self) -> bool:
        return bool(self._read())

    def set(self, name: str, password: str) -> None:
        name, password = check_name(name), check_password(password)
        users = self._read()
        users[name] = hash_password(password)
        self._write(users)

    def remove(self, name: str) -> bool:
        users = self._read()
        if name not in users:
            return False
        del users[name]
        self._write(users)
        return True

    def verify(self, name: str, password: str) -> bool:
        stored = self._read().get((name or "").strip())
        ok = verify_password(password or "", stored or _dummy_hash())
        return ok and stored is not None


@dataclass
class Guard:
    """Slows guessing, shared by every browser session of the server: each wrong password waits `delay_s`, and a
    name with `max_failures` wrong passwords within `window_s` is refused for `lockout_s` (right or wrong)."""

    delay_s: float = 1.0
    max_failures: int = 5
    window_s: float = 300.0
    lockout_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(key, []) if now - t < self.window_s]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    def locked_for(self, name: str) -> float:
        """Seconds until `name` may try again (0 when it may now)."""
        key, now = name.strip().casefold(), self.clock()
        with self._lock:
            recent = self._recent(key, now)
            if len(recent) < self.max_failures:
                return 0.0
            return max(0.0, recent[-1] + self.lockout_s - now)

    def failed(self, name: str) -> None:
        key, now = name.strip().casefold(), self.clock()
        with self._lock:
            if len(self._failures) > 10_000:   # random names must not grow this without end
                for k in list(self._failures):
                    self._recent(k, now)
            self._failures.setdefault(key, []).append(now)
        self.sleep(self.delay_s)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name.strip().casefold(), None)


GUARD = Guard()


def attempt(store: PasswordStore, name: str, password: str, guard: Guard = GUARD) -> str | None:
    """Check a name and password: None when they are right, else the sentence to show (after the guard's delay)."""
    name = (name or "").strip()
    wait = guard.locked_for(name)
    if wait > 0:
        return f"Too many wrong passwords for this name: try again in {int(wait) + 1} seconds."
    if name and store.verify(name, password):
        guard.succeeded(name)
        return None
    guard.failed(name)
    return WRONG
