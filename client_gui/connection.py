"""Checking what a volunteer pasted: an invite code or a database URL, then the run behind it.

Every failure becomes one plain sentence that says what to do. `check_connection` opens the
database, so the app calls it from a background thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import URL

from core.invite import InviteError, decode_invite
from core.store import (
    DatabaseUnavailable,
    NoRun,
    StoreError,
    open_store,
    parse_url,
    sqlite_path,
)

log = logging.getLogger(__name__)

INVITE_PREFIX = "gf"  # every invite code starts with gf<format version>-


class ConnectionProblem(Exception):
    """What was pasted cannot be used; the message is shown to the volunteer as it is."""


@dataclass(frozen=True)
class RunTarget:
    """A run this app can join."""

    url: str  # database URL for the worker (holds the password of an invite)
    shown: str  # where it is, for people: file path or host/database, no password
    run_name: str
    version: int  # latest published version when checked
    paused: bool  # the run's owner has paused it
    local: bool  # the local demo run on this computer
    compute_threads: int = 1  # the run's intra-op threads per unit (its bitwise-stable choice)


def database_url(text: str) -> tuple[str, str]:
    """(URL, shown) from a pasted invite code or database URL; ConnectionProblem if neither."""
    text = text.strip()
    if not text:
        raise ConnectionProblem(
            "Paste the invite code you were sent, or a database URL such as sqlite:///path/run.db."
        )
    if "://" in text:
        try:
            parsed = parse_url(text)
        except StoreError:
            raise ConnectionProblem(
                "That database URL is not one this app understands: use sqlite:///path/run.db or "
                "postgresql://user:password@host/database."
            ) from None
        path = sqlite_path(text)
        return text, str(path) if path is not None else _host_of(parsed)
    if text.lower().startswith(INVITE_PREFIX):
        return _invite_url(text)
    raise ConnectionProblem(
        "That is neither an invite code (it starts with gf1-) nor a database URL "
        "(sqlite:///… or postgresql://…). Paste the whole code you were sent."
    )


def _invite_url(code: str) -> tuple[str, str]:
    try:
        invite = decode_invite(code)
    except InviteError as exc:
        raise ConnectionProblem(f"This invite code does not work: {exc}") from None
    url = invite.url()
    return url, _host_of(parse_url(url))


def _host_of(parsed: URL) -> str:
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.host or 'localhost'}{port}/{parsed.database or ''}"


def check_connection(text: str, *, local: bool = False) -> RunTarget:
    """Open the database behind `text` and read its run; ConnectionProblem says what failed."""
    url, shown = database_url(text)
    try:
        store = open_store(url)
    except StoreError as exc:
        raise ConnectionProblem(explain_store_error(exc, shown)) from None
    try:
        run = store.get_run()
    except NoRun:
        raise ConnectionProblem(
            f"The database at {shown} holds no run yet: its owner has to create one first "
            "(ganfriends-coordinator init)."
        ) from None
    except StoreError as exc:
        raise ConnectionProblem(explain_store_error(exc, shown)) from None
    finally:
        store.dispose()
    log.info("connected to run %r at %s (version %d)", run.name, shown, run.version)
    threads = run.settings.get("compute_threads", 1)
    return RunTarget(
        url,
        shown,
        run.name,
        run.version,
        run.status == "paused",
        local,
        threads if isinstance(threads, int) and threads >= 1 else 1,
    )


# What a driver's message says, and what the volunteer should hear instead.
_EXPLANATIONS = (
    (
        ("password authentication failed",),
        "The server at {shown} refused the password. Check that you pasted the whole invite "
        "code; if you did, ask the run's owner for a new one.",
    ),
    (
        ('database "',),
        "The server at {shown} has no such database. Check that you pasted the whole invite "
        "code or URL.",
    ),
    (
        ("not permitted to log in", "does not exist", "has expired", "is not permitted"),
        "The server at {shown} no longer accepts this invite: it was revoked or has expired. "
        "Ask the run's owner for a new invite code.",
    ),
    (
        ("too many connections", "connection limit"),
        "The server at {shown} has no free connections for you right now; try again in a few "
        "minutes.",
    ),
    (
        (
            "could not connect",
            "connection refused",
            "could not translate host name",
            "name or service not known",
            "timeout expired",
            "timed out",
            "network is unreachable",
            "no route to host",
        ),
        "Cannot reach the run's server at {shown}. Check your internet connection; if it works, "
        "the server may be down: ask the run's owner.",
    ),
    (
        ("ssl", "certificate"),
        "The secure connection to {shown} failed ({detail}). Ask the run's owner to check the "
        "server's certificate or the invite's TLS mode.",
    ),
)


def explain_store_error(exc: StoreError, shown: str) -> str:
    """One plain sentence for a store error met while connecting."""
    detail = str(exc)
    lowered = detail.lower()
    if isinstance(exc, DatabaseUnavailable):
        for needles, message in _EXPLANATIONS:
            if any(needle in lowered for needle in needles):
                return message.format(shown=shown, detail=detail)
        return f"Cannot use the run's database at {shown}: {detail}"
    if lowered.startswith("no database at"):
        return f"There is no run database at {shown}. Check the path, or ask the run's owner."
    if "no ganfriends tables" in lowered:
        return f"The database at {shown} is not a ganfriends run (it has no ganfriends tables)."
    return detail[:1].upper() + detail[1:]
