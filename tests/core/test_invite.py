"""Invite codes: round trip, damage caught before connecting, and the worker's --invite."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from sqlalchemy import make_url

from core import worker_cli
from core.invite import PREFIX, Invite, InviteError, decode_invite, encode_invite

INVITE = Invite(
    host="db.lab.example.org",
    port=5433,
    database="class_run",
    role="class_run_alice",
    password="p@ss:w/rd?#%&=",  # every character a URL must escape
    sslmode="verify-full",
)


def test_round_trip_and_url() -> None:
    code = encode_invite(INVITE)
    assert code.startswith(PREFIX) and code.isascii() and " " not in code
    assert decode_invite(code) == INVITE
    url = make_url(INVITE.url())
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg2",
        "db.lab.example.org",
        5433,
        "class_run",
    )
    assert (url.username, url.password) == ("class_run_alice", INVITE.password)
    assert url.query == {"sslmode": "verify-full"}


def test_a_code_wrapped_over_lines_still_reads() -> None:
    code = encode_invite(INVITE)
    wrapped = "  " + "\n".join(code[i : i + 40] for i in range(0, len(code), 40)) + "\n"
    assert decode_invite(wrapped) == INVITE


def _forged(fields: object) -> str:
    """A code with a valid checksum around any contents (what a buggy encoder might make)."""
    body = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    return f"{PREFIX}{body}.{hashlib.sha256(body.encode()).hexdigest()[:8]}"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "not a ganfriends invite code"),
        ("postgresql://u:p@h/db", "not a ganfriends invite code"),
        ("gf2-abc.12345678", "version 2, but this program reads version 1"),
        ("gf1-", "cut short"),
        ("gf1-abcdef", "cut short"),
        (_forged([1, 2]), "malformed"),
        (_forged({"host": "h"}), "malformed"),
        (_forged({**INVITE.__dict__, "port": "many"}), "malformed"),
        (_forged({**INVITE.__dict__, "sslmode": "sometimes"}), "malformed: sslmode must be"),
        (_forged({**INVITE.__dict__, "port": 0}), "malformed: port must be"),
    ],
)
def test_unusable_codes_say_why(code: str, message: str) -> None:
    with pytest.raises(InviteError, match=message):
        decode_invite(code)


def test_any_changed_character_is_caught_by_the_checksum() -> None:
    code = encode_invite(INVITE)
    body_start = len(PREFIX)
    for position in range(body_start, len(code)):
        if code[position] == ".":
            continue
        swapped = "0" if code[position] != "0" else "1"
        damaged = code[:position] + swapped + code[position + 1 :]
        with pytest.raises(InviteError, match=r"damaged|malformed|cut short"):
            decode_invite(damaged)
    with pytest.raises(InviteError, match="damaged"):
        decode_invite(code[:-12] + code[-11:])  # one character lost


@pytest.mark.parametrize("code", ["gf1-garbage", "nonsense", "gf9-x.y"])
def test_worker_with_a_bad_invite_prints_one_line_and_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    monkeypatch.delenv("GANFRIENDS_DB", raising=False)
    assert worker_cli.main(["--invite", code]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("ganfriends-worker: ") and "invite code" in line


def test_worker_reads_the_invite_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANFRIENDS_INVITE", "gf1-damaged.00000000")
    assert worker_cli.main([]) == 2
    assert "damaged" in capsys.readouterr().err
