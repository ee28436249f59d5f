"""Sign-in for a shared app (seg_core.services.signin): loopback detection, the password file, slowed guessing, and
`maskloop set-password`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat

import pytest

from seg_core.cli import main
from seg_core.errors import SegError
from seg_core.services import signin
from seg_core.services.signin import Guard, PasswordStore, SignInError


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST",
                                     "::ffff:127.0.0.1"])
def test_loopback_addresses_need_no_sign_in(address):
    assert signin.is_loopback(address)
    assert not signin.signin_required(address, env={})


@pytest.mark.parametrize("address", ["", None, "0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "myhost.lan",
                                     "128.0.0.1"])
def test_any_other_address_requires_sign_in(address):
    assert not signin.is_loopback(address)
    assert signin.signin_required(address, env={})
    assert signin.signin_required(address, env={signin.REQUIRE_ENV: "0"})   # nothing turns it off


@pytest.mark.parametrize("value, required", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_the_setting_requires_sign_in_on_loopback_too(value, required):
    assert signin.signin_required("127.0.0.1", env={signin.REQUIRE_ENV: value}) is required


def test_the_hash_is_salted_scrypt_with_its_parameters():
    a, b = signin.hash_password("correct horse"), signin.hash_password("correct horse")
    assert a != b                                   # a fresh salt each time
    head, salt, key = a.split("$")
    assert head == "scrypt:16384:8:1" and len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(key)) == 32
    expected = hashlib.scrypt(b"correct horse", salt=bytes.fromhex(salt), n=2 ** 14, r=8, p=1, dklen=32)
    assert expected.hex() == key                    # standard scrypt: any tool can check it
    assert signin.verify_password("correct horse", a) and not signin.verify_password("correct horsE", a)


def test_store_verifies_right_and_wrong_for_several_users(tmp_path):
    store = PasswordStore(tmp_path / "ws" / ".maskloop" / "passwords.json")
    assert not store.configured() and store.users() == []
    store.set("alice", "alice's password")
    store.set("bob@lab.org", "bob's password!")
    assert store.users() == ["alice", "bob@lab.org"]
    assert store.verify("alice", "alice's password") and store.verify("bob@lab.org", "bob's password!")
    assert not store.verify("alice", "bob's password!") and not store.verify("carol", "alice's password")
    assert not store.verify("", "") and not store.verify("alice", "")
    store.set("alice", "a new password")            # changing one leaves the other
    assert store.verify("alice", "a new password") and not store.verify("alice", "alice's password")
    assert store.verify("bob@lab.org", "bob's password!")
    assert store.remove("bob@lab.org") and not store.remove("bob@lab.org")
    assert store.users() == ["alice"]
    text = store.path.read_text()
    assert "password" not in text.replace("passwords", "")   # no password in the file, only hashes
    assert json.loads(text)["users"]["alice"].startswith("scrypt:16384:8:1$")


def test_the_file_is_private_and_in_the_workspace(workspace):
    store = PasswordStore()
    store.set("alice", "alice's password")
    assert store.path == workspace / ".maskloop" / "passwords.json"
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir()] == ["passwords.json"]   # no temporary file left


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    store = PasswordStore(tmp_path / "passwords.json")
    store.set("alice", "alice's password")
    before = store.path.read_bytes()

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises((OSError, SegError)):
        store.set("bob", "bob's password")
    monkeypatch.undo()
    assert store.path.read_bytes() == before and store.users() == ["alice"]
    assert store.verify("alice", "alice's password")


@pytest.mark.parametrize("content, detail", [
    (b"{not json", "it is not JSON"),
    (b'{"users": {}}', "it is not a Maskloop password file"),
    (b'{"format": "maskloop-passwords", "version": 7, "users": {}}', "version 7"),
    (b'{"format": "maskloop-passwords", "version": 1, "users": {"alice": "plaintext"}}', "'alice'"),
    (b'{"format": "maskloop-passwords", "version": 1, "users": {"a": "scrypt:3:8:1$00$00"}}', "'a'"),
    (b"\xff\xfe", "it is not JSON"),
])
def test_a_corrupt_file_gives_a_sentence(tmp_path, content, detail):
    path = tmp_path / "passwords.json"
    path.write_bytes(content)
    with pytest.raises(SignInError) as err:
        PasswordStore(path).verify("alice", "whatever1")
    message = str(err.value)
    assert message.startswith(f"The password file {path} is damaged (") and detail in message
    assert "maskloop set-password" in message


@pytest.mark.parametrize("name", ["", " ", "-rf", "a/b", "x" * 65, "tab\tname", "<script>"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(SignInError, match="cannot be a user name"):
        PasswordStore(tmp_path / "p.json").set(name, "long enough")


def test_short_passwords_are_refused(tmp_path):
    with pytest.raises(SignInError, match="at least 8 characters"):
        PasswordStore(tmp_path / "p.json").set("alice", "short")


class Clock:
    def __init__(self):
        self.now, self.slept = 1000.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)


def test_wrong_passwords_are_slowed_then_locked_out(tmp_path):
    store = PasswordStore(tmp_path / "p.json")
    store.set("alice", "alice's password")
    clock = Clock()
    guard = Guard(delay_s=1.0, max_failures=3, window_s=300, lockout_s=60, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert signin.attempt(store, "alice", "guess1234", guard) == "Wrong name or password."
    assert clock.slept == [1.0, 1.0, 1.0]           # each wrong try waits
    # Locked: even the right password is refused, without running scrypt or sleeping.
    refusal = signin.attempt(store, "Alice ", "alice's password", guard)
    assert refusal.startswith("Too many wrong passwords for this name: try again in") and len(clock.slept) == 3
    assert signin.attempt(store, "bob", "guess1234", guard) == "Wrong name or password."   # other names are not
    clock.now += 61
    assert signin.attempt(store, "alice", "alice's password", guard) is None
    assert guard.locked_for("alice") == 0


def test_an_unknown_name_is_refused_like_a_wrong_password(tmp_path):
    store = PasswordStore(tmp_path / "p.json")
    store.set("alice", "alice's password")
    guard = Guard(delay_s=0)
    assert signin.attempt(store, "mallory", "alice's password", guard) == signin.WRONG
    assert signin.attempt(store, "", "alice's password", guard) == signin.WRONG


# ----- the CLI ---------------------------------------------------------------------------------------------------
def run_cli(capsys, monkeypatch, stdin: str, *argv) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_set_password_from_stdin(capsys, monkeypatch, workspace):
    code, out, _ = run_cli(capsys, monkeypatch, "alice's password\n", "set-password", "--user", "alice",
                           "--password-stdin")
    path = workspace / ".maskloop" / "passwords.json"
    assert code == 0 and out.strip() == f"set the password of 'alice' in {path} (1 name(s) can sign in)"
    code, out, _ = run_cli(capsys, monkeypatch, "bob's password\r\n", "set-password", "--user", "bob",
                           "--password-stdin")
    assert code == 0 and "(2 name(s) can sign in)" in out
    code, out, _ = run_cli(capsys, monkeypatch, "alice's new one\n", "set-password", "--user", "alice",
                           "--password-stdin")
    assert code == 0 and out.startswith("changed the password of 'alice'")
    store = PasswordStore(path)
    assert store.verify("alice", "alice's new one") and store.verify("bob", "bob's password")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_set_password_refuses_and_removes(capsys, monkeypatch, workspace, tmp_path):
    code, _, err = run_cli(capsys, monkeypatch, "short\n", "set-password", "--user", "alice", "--password-stdin")
    assert code == 2 and err.strip() == "error: That password is too short: use at least 8 characters."
    code, _, err = run_cli(capsys, monkeypatch, "", "set-password", "--user", "alice")   # not a terminal
    assert code == 2 and "--password-stdin" in err
    other = tmp_path / "elsewhere"
    code, out, _ = run_cli(capsys, monkeypatch, "long enough\n", "set-password", "--user", "alice",
                           "--password-stdin", "--workspace", str(other))
    assert code == 0 and PasswordStore(other / ".maskloop" / "passwords.json").verify("alice", "long enough")
    code, out, _ = run_cli(capsys, monkeypatch, "", "set-password", "--user", "alice", "--remove",
                           "--workspace", str(other))
    assert code == 0 and out.startswith("removed the password of 'alice'")
    code, out, _ = run_cli(capsys, monkeypatch, "", "set-password", "--user", "alice", "--remove",
                           "--workspace", str(other))
    assert code == 1 and "has no password" in out


def test_set_password_asks_twice_on_a_terminal(capsys, monkeypatch, workspace):
    answers = iter(["first password", "first password", "one password", "another one"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    assert main(["set-password", "--user", "alice"]) == 0
    assert PasswordStore().verify("alice", "first password")
    assert main(["set-password", "--user", "alice"]) == 2
    assert "The two passwords differ; nothing was changed." in capsys.readouterr().err
    assert PasswordStore().verify("alice", "first password")
