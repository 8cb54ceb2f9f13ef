"""Which statements a volunteer session may run: the ones the worker engine and the app issue.

The watchdog (coordinator/watchdog.py) reads a volunteer session's running statement from
`pg_stat_activity.query` and asks `is_engine_statement`. The engine only ever sends:
- calls of the volunteer API with literal arguments (`SELECT volunteer.touch(3, 'computing')`,
  `SELECT * FROM volunteer.claim(3)`): the function's own work is bounded;
- the binary COPY of a submission into `volunteer.result_submissions` (or, from clients older
  than migration 0014, of a payload into `volunteer.result_uploads`), and the read of the
  submitted result's id that follows it;
- reads of one volunteer view at a time, with no function call, join or subquery: columns,
  `WHERE column <op> literal` joined by AND/OR, ORDER BY, LIMIT; bare or wrapped in
  `COPY (…) TO STDOUT WITH (FORMAT binary)` (core/store/binary_copy.py);
- a few fixed statements of the driver and SQLAlchemy when a connection opens.
Anything else (a function call in an argument, a comment, `;`, an operator other than a
comparison, a second relation) is not the engine's. A statement text PostgreSQL truncated
(track_activity_query_size) is not the engine's either: its end is unknown.
"""

from __future__ import annotations

import re

API_FUNCTIONS = frozenset(
    {"register", "touch", "claim", "heartbeat", "submit", "submit_uploaded", "release"}
)
READABLE = frozenset(
    {
        "run",
        "model_versions",
        "dataset_shards",
        "metrics",
        "samples",
        "workers",
        "leaderboard",
        "trust",  # the volunteer's own verification record (the app)
        "credits",  # its workers' accepted units per minute (the app; migration 0012)
        "run_credits",  # the run's per minute
    }
)
# What psycopg2 and SQLAlchemy send on a new connection, and core.store.volunteer's detection.
FIXED = frozenset(
    {
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SELECT 1",
        "LISTEN ganfriends_work",  # core.store.notify.CHANNEL
        "select pg_catalog.version()",
        "select current_schema()",
        "show standard_conforming_strings",
        "show transaction isolation level",
        "SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid "
        "WHERE typname = 'hstore';",
        "SELECT alembic_version.version_num FROM alembic_version",
        "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace "
        "ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE "
        "pg_catalog.pg_class.relname IN ('alembic_version') AND pg_catalog.pg_class.relkind = "
        "ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND pg_catalog.pg_table_is_visible("
        "pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'",
        "SELECT CASE WHEN to_regnamespace('volunteer') IS NULL THEN false WHEN "
        "to_regclass('work_units') IS NULL THEN true ELSE NOT has_table_privilege("
        "to_regclass('work_units'), 'UPDATE') END",
        # core.store.clock.server_now: the app's "last hour" is the server's (credits)
        "SELECT extract(epoch FROM clock_timestamp())",
        # core.store.volunteer.submit: the id its COPY's trigger left (migration 0014)
        "SELECT current_setting('ganfriends.submitted_result')",
    }
)
UPLOAD = re.compile(
    r"COPY volunteer\.result_(?:submissions|uploads) \((?:\w+, )*\w+\) "
    r"FROM STDIN WITH \(FORMAT binary\)"
)
KEYWORDS = frozenset(
    {
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "order",
        "by",
        "asc",
        "desc",
        "limit",
        "offset",
        "as",
        "copy",
        "to",
        "stdout",
        "with",
        "format",
        "binary",
        "nulls",
        "first",
        "last",
    }
)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lit>'(?:[^']|'')*'(?:::[a-z][a-z0-9_]*)?|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?
              |(?i:true|false|null)\b)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<op><=|>=|<>|!=|=|<|>)
    | (?P<punct>[(),*])
    )""",
    re.VERBOSE,
)
Token = tuple[str, str]  # (kind, text): kind is lit, name, op or punct


def is_engine_statement(query: str, truncated: bool = False) -> bool:
    """Whether `query` is one the worker engine (or the app) issues; False when unsure."""
    text = " ".join(query.split())
    if truncated:
        return False
    if text in FIXED or UPLOAD.fullmatch(text):
        return True
    tokens = tokenize(text)
    if tokens is None:
        return False
    return _api_call(tokens) or _read(tokens) or _copy_out(tokens)


def tokenize(text: str) -> list[Token] | None:
    """The statement's tokens, or None when it holds anything outside the engine's grammar."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            return None if text[position:].strip() else tokens
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _word(token: Token, word: str) -> bool:
    return token[0] == "name" and token[1].lower() == word


def _api_call(tokens: list[Token]) -> bool:
    """`SELECT volunteer.f(literals)` or `SELECT * FROM volunteer.claim(literal)`."""
    if len(tokens) < 4 or not _word(tokens[0], "select"):
        return False
    rest = tokens[1:]
    if rest[:2] == [("punct", "*"), ("name", "FROM")]:
        rest = rest[2:]
    kind, name = rest[0]
    schema, _, function = name.partition(".")
    if kind != "name" or schema != "volunteer" or function not in API_FUNCTIONS:
        return False
    return _literal_list(rest[1:])


def _literal_list(tokens: list[Token]) -> bool:
    """`( literal, literal, … )` and nothing after it."""
    if len(tokens) < 2 or tokens[0] != ("punct", "(") or tokens[-1] != ("punct", ")"):
        return False
    inner = tokens[1:-1]
    if not inner:
        return True
    return all(t[0] == "lit" for t in inner[::2]) and all(t == ("punct", ",") for t in inner[1::2])


def _copy_out(tokens: list[Token]) -> bool:
    """`COPY ( read ) TO STDOUT WITH ( FORMAT binary )`."""
    tail = [("name", "TO"), ("name", "STDOUT"), ("name", "WITH"), ("punct", "(")]
    tail += [("name", "FORMAT"), ("name", "binary"), ("punct", ")")]
    if len(tokens) < 3 + len(tail) or not _word(tokens[0], "copy") or tokens[1] != ("punct", "("):
        return False
    if tokens[-len(tail) :] != tail or tokens[-len(tail) - 1] != ("punct", ")"):
        return False
    return _read(tokens[2 : -len(tail) - 1])


def _column(token: Token) -> bool:
    """A column reference: a plain name or `volunteer.view.column`, never a keyword."""
    if token[0] != "name" or token[1].lower() in KEYWORDS:
        return False
    parts = token[1].split(".")
    return len(parts) == 1 or (len(parts) == 3 and parts[0] == "volunteer" and parts[1] in READABLE)


def _read(tokens: list[Token]) -> bool:
    """`SELECT columns FROM volunteer.view [WHERE …] [ORDER BY …] [LIMIT n] [OFFSET n]`."""
    if not tokens or not _word(tokens[0], "select"):
        return False
    try:
        at = _select_list(tokens, 1)
        if not _word(tokens[at], "from"):
            return False
        schema, _, view = tokens[at + 1][1].partition(".")
        if tokens[at + 1][0] != "name" or schema != "volunteer" or view not in READABLE:
            return False
        at = _where(tokens, at + 2)
        at = _order_by(tokens, at)
        for word in ("limit", "offset"):
            if at < len(tokens) and _word(tokens[at], word):
                if tokens[at + 1][0] != "lit":
                    return False
                at += 2
    except IndexError:
        return False
    return at == len(tokens)


def _select_list(tokens: list[Token], at: int) -> int:
    if tokens[at] == ("punct", "*"):
        return at + 1
    while True:
        if not _column(tokens[at]):
            raise IndexError("not a column")
        at += 1
        if _word(tokens[at], "as"):
            at += 2
        if tokens[at] != ("punct", ","):
            return at
        at += 1


def _where(tokens: list[Token], at: int) -> int:
    if at >= len(tokens) or not _word(tokens[at], "where"):
        return at
    at += 1
    while True:
        at = _condition(tokens, at)
        if at < len(tokens) and (_word(tokens[at], "and") or _word(tokens[at], "or")):
            at += 1
            continue
        return at


def _condition(tokens: list[Token], at: int) -> int:
    """`column op literal`, `column IN (literals)` or `column IS [NOT] NULL`."""
    if not _column(tokens[at]):
        raise IndexError("not a column")
    if tokens[at + 1][0] == "op" and tokens[at + 2][0] == "lit":
        return at + 3
    if _word(tokens[at + 1], "is"):
        at += 2
        if _word(tokens[at], "not"):
            at += 1
        if tokens[at][0] != "lit" or tokens[at][1].lower() != "null":
            raise IndexError("not IS NULL")
        return at + 1
    if _word(tokens[at + 1], "in"):
        end = next(i for i in range(at + 2, len(tokens)) if tokens[i] == ("punct", ")"))
        if not _literal_list(tokens[at + 2 : end + 1]):
            raise IndexError("not a literal list")
        return end + 1
    raise IndexError("not a condition")


def _order_by(tokens: list[Token], at: int) -> int:
    if at >= len(tokens) or not _word(tokens[at], "order"):
        return at
    if not _word(tokens[at + 1], "by"):
        raise IndexError("ORDER without BY")
    at += 2
    while True:
        if not _column(tokens[at]):
            raise IndexError("not a column")
        at += 1
        while at < len(tokens) and any(
            _word(tokens[at], w) for w in ("asc", "desc", "nulls", "first", "last")
        ):
            at += 1
        if at < len(tokens) and tokens[at] == ("punct", ","):
            at += 1
            continue
        return at
