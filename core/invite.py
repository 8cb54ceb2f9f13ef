"""Invite codes: one pasteable string carrying everything a volunteer needs to join a run.

Format: `gf1-` + base64url(JSON, unpadded) + `.` + 8 hex digits of its sha256. The version
number in the prefix lets later releases change the contents; the checksum catches a code cut
short or mistyped before any connection is tried.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import asdict, dataclass

from sqlalchemy import URL

VERSION = 1
PREFIX = f"gf{VERSION}-"
SSLMODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
_CHECK_CHARS = 8  # hex digits of sha256 kept as the checksum
_PREFIX_RE = re.compile(r"gf(\d+)-")


class InviteError(ValueError):
    """An invite code that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Invite:
    """Where and as whom a volunteer connects."""

    host: str
    port: int
    database: str
    role: str  # the volunteer's login role
    password: str
    sslmode: str  # libpq sslmode: disable, prefer, require, verify-ca or verify-full

    def __post_init__(self) -> None:
        if self.sslmode not in SSLMODES:
            raise InviteError(f"sslmode must be one of {', '.join(SSLMODES)}, not {self.sslmode!r}")
        if not 0 < self.port < 65536:
            raise InviteError(f"port must be between 1 and 65535, not {self.port}")
        for name in ("host", "database", "role", "password"):
            if not getattr(self, name):
                raise InviteError(f"an invite needs a {name}")

    def url(self) -> str:
        """The SQLAlchemy URL to open the run with (password included)."""
        return URL.create(
            "postgresql+psycopg2",
            username=self.role,
            password=self.password,
            host=self.host,
            port=self.port,
            database=self.database,
            query={"sslmode": self.sslmode},
        ).render_as_string(hide_password=False)


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode("ascii")).hexdigest()[:_CHECK_CHARS]


def encode_invite(invite: Invite) -> str:
    """The invite code of `invite` (inverse of `decode_invite`)."""
    text = json.dumps(asdict(invite), separators=(",", ":"), sort_keys=True)
    body = base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{PREFIX}{body}.{_checksum(body)}"


def decode_invite(code: str) -> Invite:
    """The invite a code carries; InviteError with a plain message when it is not usable."""
    code = "".join(code.split())  # codes pasted from e-mails may be wrapped over lines
    match = _PREFIX_RE.match(code)
    if match is None:
        raise InviteError(
            f"this is not a ganfriends invite code (a code starts with {PREFIX}); "
            "copy the whole code you were sent"
        )
    if int(match.group(1)) != VERSION:
        raise InviteError(
            f"this invite code is version {match.group(1)}, but this program reads version "
            f"{VERSION}; install the ganfriends release the run's owner uses"
        )
    body, dot, check = code[match.end() :].rpartition(".")
    if not dot or not body:
        raise InviteError("the invite code is cut short; copy the whole code you were sent")
    if _checksum(body) != check.lower():
        raise InviteError(
            "the invite code is damaged (its checksum does not match): copy it again in full, "
            "without changing any character"
        )
    try:
        fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return Invite(
            host=str(fields["host"]),
            port=int(fields["port"]),
            database=str(fields["database"]),
            role=str(fields["role"]),
            password=str(fields["password"]),
            sslmode=str(fields["sslmode"]),
        )
    except InviteError as error:
        raise InviteError(f"the invite code is malformed: {error}") from error
    except (binascii.Error, ValueError, TypeError, KeyError) as error:
        raise InviteError(
            "the invite code is malformed (its contents cannot be read); ask the run's owner "
            "for a new one"
        ) from error
