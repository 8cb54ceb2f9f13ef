"""The run database's tables (SQLAlchemy Core); migration 0001 creates exactly these."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# Fixed constraint names so migrations on SQLite and PostgreSQL can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Times are float seconds since the epoch (DOUBLE PRECISION / REAL) from the store's clock.

run = Table(
    "run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model_config", Text, nullable=False),  # JSON object
    Column("settings", Text, nullable=False),  # JSON object
    Column("dataset_size", Integer, nullable=False),
    Column("image_size", Integer, nullable=False),
    Column("version", Integer, nullable=False),  # latest published version
    Column("cursor", Integer, nullable=False),  # next global unit index to designate
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    # What stops the run, if anything (JSON {kind, message, remedy, since}; NULL when
    # healthy): set by the coordinator, shown by `status` and the app (migration 0008).
    Column("alert", Text, nullable=True),
    CheckConstraint("id = 1", name="single_row"),
    CheckConstraint("status IN ('active', 'paused')", name="status"),
)

# Who serves the run (one row, id 1). Taking the run adds 1 to `epoch`; every write
# transaction of a coordinator checks that the epoch is still its own (core.store.fence), so
# one that wakes after another took over writes nothing. Times are the database's clock.
coordinator = Table(
    "coordinator",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("epoch", Integer, nullable=False),  # 0 until a coordinator first takes the run
    Column("host", String(255), nullable=False),  # the holder's host name
    Column("pid", Integer, nullable=False),  # the holder's process id
    Column("since", Double, nullable=False),  # when it took the run
    Column("seen_at", Double, nullable=False),  # its last sign of life
    CheckConstraint("id = 1", name="single_row"),
)

dataset_shards = Table(
    "dataset_shards",
    metadata,
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("image_size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),  # uint8 (count, 3, S, S)
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("weights", LargeBinary, nullable=False),  # safetensors bytes
    Column("sha256", String(64), nullable=False),
    Column("model_config", Text, nullable=False),  # JSON object
    Column("is_checkpoint", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    # The units designated for this version: global indices unit_start.. (unit_count of
    # them), so a rollback can designate them again (NULL before migration 0008).
    Column("unit_start", Integer, nullable=True),
    Column("unit_count", Integer, nullable=True),
)

# Adam's moments for a version's weights: the close inserts the row of the version it
# publishes, `housekeeping.tidy` deletes older ones (an UPDATE would rewrite 48 MiB in place).
optimizer_states = Table(
    "optimizer_states",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("state", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),  # of `state`, checked on every read
)

workers = Table(
    "workers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("device", String(200), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    Column("state", String(200), nullable=False),
    Column("units", Integer, nullable=False, server_default=text("0")),
    Column("images", BigInteger, nullable=False, server_default=text("0")),
    Column("compute_s", Double, nullable=False, server_default=text("0")),
    Column("rejected", Integer, nullable=False, server_default=text("0")),
    # Trust (migration 0011): the volunteer identity the worker acts for (its login role on
    # PostgreSQL, its name otherwise) and its results another volunteer's computation confirmed.
    Column("volunteer", String(200), nullable=True),
    Column("verified", Integer, nullable=False, server_default=text("0")),
    sqlite_autoincrement=True,
)

# Accepted units per worker and minute (migration 0012): what the app's "share of the last
# hour" is computed from, so it survives restarts of the app. The unit rows themselves are
# pruned a version after they close; these rows are pruned after a day (core.store.credits).
credits = Table(
    "credits",
    metadata,
    Column("worker_id", Integer, ForeignKey("workers.id"), primary_key=True),
    Column("minute", Double, primary_key=True),  # start of the minute, seconds since the epoch
    Column("units", Integer, nullable=False),  # accepted (or cross-checked) units
    Column("images", BigInteger, nullable=False),  # images in them, counted by the coordinator
    Index("ix_credits_minute", "minute"),
)

work_units = Table(
    "work_units",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("unit_index", Integer, nullable=False),  # global unit number
    Column("copy", Integer, nullable=False),  # 0 = designated unit, 1.. = backup copies
    Column("seed", BigInteger, nullable=False),
    Column("sample_indices", LargeBinary, nullable=False),  # int32 little-endian
    Column("sample_count", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("lease_token", String(64), nullable=True),  # kept after submit to spot re-submits
    Column("lease_expires_at", Double, nullable=True),
    Column("leased_at", Double, nullable=True),
    Column("worker_id", Integer, ForeignKey("workers.id"), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("version", "unit_index", "copy"),  # also serves (version, unit_index)
    CheckConstraint(
        "status IN ('pending', 'leased', 'submitted', 'done', 'parked', 'cancelled')",
        name="status",
    ),
    # The claim reads the first pending unit of the current version in (unit_index, copy)
    # order straight off this index, however many finished units the table holds.
    Index("ix_work_units_claim", "status", "version", "unit_index", "copy"),
    sqlite_autoincrement=True,
)

results = Table(
    "results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("unit_id", Integer, ForeignKey("work_units.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("unit_index", Integer, nullable=False),
    Column("worker_id", Integer, ForeignKey("workers.id"), nullable=False),
    Column("precision", String(16), nullable=False),
    Column("claimed_samples", Integer, nullable=False),  # the worker's word, for the record
    # Losses are NULL when the worker sent NaN (SQLite cannot store NaN).
    Column("d_loss", Double, nullable=True),
    Column("g_loss", Double, nullable=True),
    Column("d_real", Double, nullable=True),
    Column("d_fake", Double, nullable=True),
    Column("compute_s", Double, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("submitted_at", Double, nullable=False),
    CheckConstraint("status IN ('new', 'accepted', 'rejected', 'crosscheck')", name="status"),
    Index("ix_results_status", "status", "id"),
    Index("ix_results_unit_id", "unit_id"),
    # Safety net for the protocol's invariant: one accepted result per designated unit.
    Index(
        "uq_results_accepted",
        "version",
        "unit_index",
        unique=True,
        sqlite_where=text("status = 'accepted'"),
        postgresql_where=text("status = 'accepted'"),
    ),
    sqlite_autoincrement=True,
)

# Each result's payload, apart from the small row the coordinator updates and deletes: SQLite
# rewrites a whole row on UPDATE and walks a blob's page chain on DELETE, so keeping 24 MiB
# payloads in `results` made every verdict and every close copy or walk them. A payload row
# outlives its result on purpose (no foreign key): the close deletes only the small rows, and
# `housekeeping.tidy` deletes payloads whose result is gone or resolved, when the coordinator
# is idle (migration 0004).
result_payloads = Table(
    "result_payloads",
    metadata,
    Column("result_id", Integer, primary_key=True, autoincrement=False),
    Column("payload", LargeBinary, nullable=False),
    # Of `payload`, checked on every read. PostgreSQL fills it in by trigger when an insert
    # leaves it out (volunteers' payloads, written by `volunteer.submit`).
    Column("sha256", String(64), nullable=False),
)

# A result payload on its way into `result_payloads` (PostgreSQL): it arrives by binary COPY, so its
# bytes cross the wire once instead of as hex text, and the submit's own transaction moves it
# into `results` and deletes it. `owner` defaults to session_user on PostgreSQL (migration 0003).
result_uploads = Table(
    "result_uploads",
    metadata,
    Column("lease_token", String(64), primary_key=True),  # the lease the payload answers
    Column("owner", String(63), primary_key=True),  # the role that uploaded it
    Column("payload", LargeBinary, nullable=False),
)

# What the run knows about each volunteer identity (core/verification.py), one row each once
# one of its results was settled; owner-only (a volunteer reads its own row through a view).
trust = Table(
    "trust",
    metadata,
    Column("identity", String(200), primary_key=True),
    Column("earned", Integer, nullable=False, server_default=text("0")),
    Column("verified", Integer, nullable=False, server_default=text("0")),
    Column("outvoted", Integer, nullable=False, server_default=text("0")),
    Column("quarantined_at", Double, nullable=True),
    Column("reason", Text, nullable=True),  # why it was quarantined
    Column("updated_at", Double, nullable=False),
)

# Valid results waiting for another volunteer's computation before they may count. The result
# stays 'new' (its payload readable) and leaves this table when its unit is settled.
held_results = Table(
    "held_results",
    metadata,
    Column("result_id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("unit_index", Integer, nullable=False),
    Column("identity", String(200), nullable=False),
    Column("device", String(200), nullable=False),
    Index("ix_held_results_version_unit_index", "version", "unit_index"),
)

# Results that counted without a second computation (a trusted volunteer's, not picked for a
# spot-check): if that volunteer is caught later, the run goes back to before the oldest of them.
unchecked_results = Table(
    "unchecked_results",
    metadata,
    Column("result_id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("identity", String(200), nullable=False, index=True),
)

metrics = Table(
    "metrics",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("d_loss", Double, nullable=True),  # NULL stands for NaN
    Column("g_loss", Double, nullable=True),
    Column("d_real", Double, nullable=True),
    Column("d_fake", Double, nullable=True),
    Column("images", Integer, nullable=False),
    Column("units", Integer, nullable=False),
    Column("parked_units", Integer, nullable=False),
    Column("close_s", Double, nullable=False),
    Column("swd", Double, nullable=True),  # NULL until computed
    Column("created_at", Double, nullable=False),
)

samples = Table(
    "samples",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("png", LargeBinary, nullable=False),
    Column("swd", Double, nullable=True),
    Column("created_at", Double, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Double, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("worker_id", Integer, ForeignKey("workers.id"), nullable=True),
    Column("version", Integer, nullable=True),
    Column("message", Text, nullable=False),
    sqlite_autoincrement=True,
)
