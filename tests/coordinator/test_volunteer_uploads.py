"""Volunteer payloads go up by binary COPY through checked views: a whole submission into
`volunteer.result_submissions` (migration 0014), a payload to stage into the older
`volunteer.result_uploads` (migration 0005, for clients older than 0014).

Real server, real volunteer logins: the payload crosses the wire once (not as hex), each view's
trigger refuses what `volunteer.submit` refuses, and a submission is written once.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import psycopg2
from sqlalchemy import func, select, text

from core.store import Lease, Store
from core.store.schema import result_uploads
from tests.coordinator import test_volunteers as shared
from tests.coordinator.harness import wait_for
from tests.coordinator.test_volunteers import OwnedDatabase, connect_as
from tests.core.store.factories import METRICS, UNIT_SIZE
from tests.tcp_proxy import TcpProxy

owned_db, fake_run = shared.owned_db, shared.fake_run  # the fixtures, shared

MAX_RATIO = 1.1  # wire bytes ÷ payload bytes; hex text would be 2.0
INSERT = (
    "INSERT INTO volunteer.result_uploads (worker_id, unit_id, lease_token, payload) "
    "VALUES (%s, %s, %s, %s)"
)


def staged(owner: Store) -> int:
    with owner.session() as conn:
        return int(conn.execute(select(func.count()).select_from(result_uploads)).scalar_one())


def pgcode(conn: Any, statement: str, params: tuple[Any, ...] = ()) -> str | None:
    """The SQLSTATE `statement` fails with as the volunteer, or None if it succeeds."""
    with conn.cursor() as cur:
        try:
            cur.execute(statement, params)
        except psycopg2.Error as error:
            return str(error.pgcode)
    return None


@dataclasses.dataclass
class TwoClaims:
    """Mallory (a raw connection) and Bob (the engine's store), each holding a unit; the run's
    payloads capped at 1,048 bytes."""

    mallory: Any
    mine: int  # Mallory's worker
    unit: int
    token: str
    bob: Store
    bobs_worker: int
    bobs: Lease


def two_claims(owned_db: OwnedDatabase, fake_run: Store) -> TwoClaims:
    mallory = connect_as(owned_db.invite(fake_run, "mallory"))
    bob = owned_db.open_volunteer(owned_db.invite(fake_run, "bob"))
    with mallory.cursor() as cur:
        cur.execute("SELECT volunteer.register('m', 'h', 'cpu')")
        (mine,) = cur.fetchone()
        cur.execute("SELECT unit_id, token FROM volunteer.claim(%s)", (mine,))
        unit, token = cur.fetchone()
    bobs_worker = bob.register_worker("b", "h", "cpu")
    bobs = bob.claim(bobs_worker)
    assert bobs is not None
    fake_run.update_settings({"max_payload_mb": 0.001})  # 1048 bytes
    return TwoClaims(mallory, mine, unit, token, bob, bobs_worker, bobs)


def test_a_volunteer_sends_its_payload_once(owned_db: OwnedDatabase, fake_run: Store) -> None:
    invite = owned_db.invite(fake_run, "vera")
    server = owned_db.server
    with TcpProxy((server.host, server.port)) as proxy:
        vera = owned_db.open_volunteer(dataclasses.replace(invite, port=proxy.port))
        worker = vera.register_worker("v", "h", "cpu")
        lease = vera.claim(worker)
        assert lease is not None
        payload = os.urandom(1 << 20)
        proxy.reset_counts()
        result_id = vera.submit(lease, payload, "fp32", UNIT_SIZE, METRICS, 0.1)
        ratio = proxy.up_bytes / len(payload)
    assert ratio < MAX_RATIO, f"{ratio:.2f} bytes on the wire per payload byte"
    assert fake_run.result_payload(result_id) == payload
    assert staged(fake_run) == 0  # moved into result_payloads in the same transaction


def test_the_upload_view_checks_worker_lease_and_size(
    owned_db: OwnedDatabase, fake_run: Store
) -> None:
    claims = two_claims(owned_db, fake_run)
    mallory, mine, unit, token = claims.mallory, claims.mine, claims.unit, claims.token
    bobs_worker, bobs = claims.bobs_worker, claims.bobs
    try:
        assert pgcode(mallory, INSERT, (bobs_worker, bobs.unit_id, bobs.token, b"x")) == "GF004"
        assert pgcode(mallory, INSERT, (mine, bobs.unit_id, bobs.token, b"x")) == "GF001"
        assert pgcode(mallory, INSERT, (mine, unit, "made-up", b"x")) == "GF001"
        assert pgcode(mallory, INSERT, (mine, unit, token, b"x" * 2000)) == "GF006"
        for statement in (
            "SELECT * FROM volunteer.result_uploads",
            "UPDATE volunteer.result_uploads SET payload = 'x'",
            "DELETE FROM volunteer.result_uploads",
            "INSERT INTO result_uploads (lease_token, owner, payload) VALUES ('t', 'bob', 'x')",
        ):
            assert pgcode(mallory, statement) == "42501", statement
        assert staged(fake_run) == 0

        # Submitting with nothing uploaded is refused; a valid upload is staged once.
        submit = "SELECT volunteer.submit_uploaded(%s, %s, %s, 'fp32', 4, 1, 1, 1, 1, 0.1)"
        assert pgcode(mallory, submit, (mine, unit, token)) == "GF006"
        assert pgcode(mallory, INSERT, (mine, unit, token, b"y" * 100)) is None
        assert pgcode(mallory, INSERT, (mine, unit, token, b"z" * 100)) is None  # a retry
        assert staged(fake_run) == 1
    finally:
        mallory.close()
        claims.bob.dispose()


def test_an_upload_left_behind_is_deleted_once_its_lease_ends(
    owned_db: OwnedDatabase, fake_run: Store
) -> None:
    fake_run.update_settings({"lease_s": 0.5})
    mallory = connect_as(owned_db.invite(fake_run, "mallory"))
    try:
        with mallory.cursor() as cur:
            cur.execute("SELECT volunteer.register('m', 'h', 'cpu')")
            (worker,) = cur.fetchone()
            cur.execute("SELECT unit_id, token FROM volunteer.claim(%s)", (worker,))
            unit, token = cur.fetchone()
            cur.execute(INSERT, (worker, unit, token, b"never submitted"))
        fake_run.tidy()
        assert staged(fake_run) == 1  # the lease still holds: it may still submit
        time.sleep(0.6)
        assert fake_run.expire_leases() == 1
        fake_run.tidy()
        assert staged(fake_run) == 0
    finally:
        mallory.close()


SUBMIT_ROW = (
    "INSERT INTO volunteer.result_submissions (worker_id, unit_id, lease_token, precision, "
    "claimed_samples, d_loss, g_loss, d_real, d_fake, compute_s, payload) "
    "VALUES (%s, %s, %s, 'fp32', 4, 1, 1, 1, 1, 0.1, %s)"
)


def inserted(owner: Store, table: str) -> int:
    """Rows ever inserted into `table`, by the server's statistics."""
    with owner.session() as conn:
        statement = text("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = :table")
        return int(conn.execute(statement, {"table": table}).scalar_one())


def test_the_submissions_view_checks_what_submit_checks(
    owned_db: OwnedDatabase, fake_run: Store
) -> None:
    claims = two_claims(owned_db, fake_run)
    mallory, mine, unit, token = claims.mallory, claims.mine, claims.unit, claims.token
    bobs_worker, bobs = claims.bobs_worker, claims.bobs
    try:
        assert pgcode(mallory, SUBMIT_ROW, (bobs_worker, bobs.unit_id, bobs.token, b"x")) == (
            "GF004"
        )
        assert pgcode(mallory, SUBMIT_ROW, (mine, bobs.unit_id, bobs.token, b"x")) == "GF001"
        assert pgcode(mallory, SUBMIT_ROW, (mine, unit, "made-up", b"x")) == "GF001"
        assert pgcode(mallory, SUBMIT_ROW, (mine, unit, token, b"x" * 2000)) == "GF006"
        assert pgcode(mallory, "SELECT * FROM volunteer.result_submissions") == "42501"
        for statement in (  # refused for want of privilege, or as a view that has no table
            "UPDATE volunteer.result_submissions SET payload = 'x'",
            "DELETE FROM volunteer.result_submissions",
        ):
            assert pgcode(mallory, statement) in ("42501", "55000"), statement
        assert pgcode(mallory, SUBMIT_ROW, (mine, unit, token, b"y" * 100)) is None
        assert pgcode(mallory, SUBMIT_ROW, (mine, unit, token, b"z" * 100)) == "GF002"  # again
        assert staged(fake_run) == 0
    finally:
        mallory.close()
        claims.bob.dispose()


def test_a_submission_writes_its_payload_once(owned_db: OwnedDatabase, fake_run: Store) -> None:
    # Before migration 0014 a payload was staged in result_uploads, read back and written again.
    vera = owned_db.open_volunteer(owned_db.invite(fake_run, "vera"))
    before = {table: inserted(fake_run, table) for table in ("result_uploads", "result_payloads")}
    try:
        worker = vera.register_worker("v", "h", "cpu")
        lease = vera.claim(worker)
        assert lease is not None
        result_id = vera.submit(lease, os.urandom(1 << 16), "fp32", UNIT_SIZE, METRICS, 0.1)
    finally:
        vera.dispose()  # its server session ends and reports its statistics
    assert fake_run.result_payload(result_id)
    wait_for(lambda: inserted(fake_run, "result_payloads") > before["result_payloads"])
    assert inserted(fake_run, "result_uploads") == before["result_uploads"]
