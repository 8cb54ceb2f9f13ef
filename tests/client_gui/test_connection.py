"""What a volunteer pastes is checked, and every failure is one plain sentence."""

from __future__ import annotations

import pytest

from client_gui.connection import ConnectionProblem, check_connection, explain_store_error
from core.invite import Invite, encode_invite
from core.store import DatabaseUnavailable, StoreError, open_store
from tests.coordinator.harness import make_tiny_run


def problem(text: str) -> str:
    with pytest.raises(ConnectionProblem) as caught:
        check_connection(text)
    return str(caught.value)


def test_malformed_input_says_what_is_expected():
    assert "Paste the invite code" in problem("   ")
    assert "neither an invite code" in problem("hello there")
    assert "not one this app understands" in problem("mysql://u@h/db")


def test_malformed_invite_codes_are_named():
    assert problem("gf1-garbage") == (
        "This invite code does not work: the invite code is cut short; copy the whole code "
        "you were sent"
    )
    code = unreachable_invite()
    damaged = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert "checksum does not match" in problem(damaged)


def unreachable_invite() -> str:
    # Port 1 on this machine refuses at once: the same path as a host that is down.
    return encode_invite(Invite("127.0.0.1", 1, "run", "volunteer", "s3cret", "disable"))


@pytest.mark.parametrize("kind", ["invite", "url"])
def test_unreachable_host_is_said_plainly(kind):
    text = unreachable_invite() if kind == "invite" else "postgresql://v:s3cret@127.0.0.1:1/run"
    message = problem(text)
    assert message.startswith("Cannot reach the run's server at 127.0.0.1:1/run.")
    assert "s3cret" not in message


def test_missing_file_and_empty_database(tmp_path):
    assert "There is no run database at" in problem(f"sqlite:///{tmp_path / 'none.db'}")
    empty = tmp_path / "empty.db"
    open_store(f"sqlite:///{empty}", create=True).dispose()
    assert "holds no run yet" in problem(f"sqlite:///{empty}")


def test_a_real_run_connects_and_a_paused_one_says_so(tmp_path):
    run = make_tiny_run(tmp_path)
    target = check_connection(run.url)
    assert (target.run_name, target.version, target.paused) == ("test", 0, False)
    assert target.shown == str(run.path)
    store = run.store()
    store.set_status("paused")
    store.dispose()
    assert check_connection(run.url).paused


@pytest.mark.parametrize(
    ("driver_text", "expected"),
    [
        ('FATAL:  password authentication failed for user "bob"', "refused the password"),
        ('FATAL:  role "bob" is not permitted to log in', "revoked or has expired"),
        ('FATAL:  database "nope" does not exist', "has no such database"),
        ("FATAL:  too many connections for role", "no free connections"),
        ('could not translate host name "x.invalid"', "Cannot reach the run's server"),
    ],
)
def test_server_refusals_become_sentences(driver_text, expected):
    message = explain_store_error(DatabaseUnavailable(driver_text), "db.example.org:5432/run")
    assert expected in message


def test_other_store_errors_pass_their_own_message():
    assert explain_store_error(StoreError("schema revision 1 but needs 3"), "x") == (
        "Schema revision 1 but needs 3"
    )
