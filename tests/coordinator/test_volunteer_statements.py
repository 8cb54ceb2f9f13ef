"""The watchdog's test of a volunteer's running statement: the engine's pass, nothing else does.

The engine's statements below were read from the server log of a real worker engine and app
reads on a volunteer login (log_statement = all); test_hostile_volunteer.py runs an honest
worker under a watchdog that ends anything else at once.
"""

from __future__ import annotations

import pytest

from coordinator.volunteer_statements import is_engine_statement

ENGINE = [
    "BEGIN",
    "SELECT 1",
    "LISTEN ganfriends_work",
    "select pg_catalog.version()",
    "SELECT alembic_version.version_num \n\tFROM alembic_version",
    "SELECT CASE WHEN to_regnamespace('volunteer') IS NULL THEN false WHEN "
    "to_regclass('work_units') IS NULL THEN true ELSE NOT has_table_privilege("
    "to_regclass('work_units'), 'UPDATE') END",
    "SELECT volunteer.register('hal-pc', 'h', 'cpu')",
    "SELECT volunteer.touch(1, 'downloading')",
    "SELECT * FROM volunteer.claim(1)",
    "SELECT volunteer.heartbeat(1, 3, '4021c815a87d4d1abc31c0894a1dc2c1')",
    "SELECT volunteer.release(1, 3, '4021c815a87d4d1abc31c0894a1dc2c1')",
    "SELECT volunteer.submit_uploaded(1, 1, '4021c815a87d4d1abc31c0894a1dc2c1', 'fp32', 12, "
    "1.348549246788025, 0.6754883726437887, 'NaN'::float, -0.5, 0.061089984999853186)",
    "COPY volunteer.result_uploads (worker_id, unit_id, lease_token, payload) FROM STDIN "
    "WITH (FORMAT binary)",
    "COPY volunteer.result_submissions (worker_id, unit_id, lease_token, precision, "
    "claimed_samples, d_loss, g_loss, d_real, d_fake, compute_s, payload) FROM STDIN "
    "WITH (FORMAT binary)",
    "SELECT current_setting('ganfriends.submitted_result')",
    "COPY (SELECT volunteer.model_versions.weights \n\tFROM volunteer.model_versions \n\t"
    "WHERE volunteer.model_versions.version = 0) TO STDOUT WITH (FORMAT binary)",
    "COPY (SELECT volunteer.dataset_shards.data \n\tFROM volunteer.dataset_shards \n\t"
    "WHERE volunteer.dataset_shards.idx = 0) TO STDOUT WITH (FORMAT binary)",
    "SELECT volunteer.run.id, volunteer.run.name, volunteer.run.status \n\tFROM volunteer.run "
    "\n\tWHERE volunteer.run.id = 1",
    "SELECT volunteer.dataset_shards.idx, volunteer.dataset_shards.count \n\t"
    "FROM volunteer.dataset_shards ORDER BY volunteer.dataset_shards.idx",
    "SELECT volunteer.metrics.version, volunteer.metrics.d_loss \n\tFROM volunteer.metrics \n\t"
    "WHERE volunteer.metrics.version >= 0 ORDER BY volunteer.metrics.version",
    "SELECT volunteer.samples.version, volunteer.samples.png \n\tFROM volunteer.samples "
    "ORDER BY volunteer.samples.version DESC \n LIMIT 5",
    "SELECT name, units, images, compute_s FROM volunteer.leaderboard "
    "ORDER BY images DESC, units DESC, name",
    # The app's figures of the last hour (core/store/credits.py) and its verification record.
    "SELECT extract(epoch FROM clock_timestamp())",
    "SELECT volunteer.credits.worker_id, volunteer.credits.units, volunteer.credits.images \n\t"
    "FROM volunteer.credits \n\tWHERE volunteer.credits.minute > 1764950340.0",
    "SELECT volunteer.run_credits.units, volunteer.run_credits.images \n\t"
    "FROM volunteer.run_credits \n\tWHERE volunteer.run_credits.minute > 1764950340.0",
    "SELECT volunteer.trust.identity, volunteer.trust.earned \n\tFROM volunteer.trust",
]
HOSTILE = [
    "SELECT count(*) FROM generate_series(1, 3e9::bigint)",
    "SELECT pg_sleep(60)",
    "SET statement_timeout = 0; SELECT 1",
    "SELECT volunteer.touch(1, (SELECT string_agg(relname, '') FROM pg_class))",
    "SELECT volunteer.touch(1, 'x') FROM generate_series(1, 1000000000)",
    "SELECT * FROM volunteer.claim(1), generate_series(1, 10)",
    "SELECT volunteer._expire_leases(0, 3)",
    "SELECT * FROM volunteer.metrics a, volunteer.metrics b, volunteer.metrics c",
    "SELECT * FROM volunteer.metrics JOIN volunteer.samples USING (version)",
    "SELECT * FROM volunteer.run FOR UPDATE",
    "SELECT repeat(volunteer.run.name, 1000000000) FROM volunteer.run",
    "SELECT volunteer.run.name || volunteer.run.name FROM volunteer.run",
    "SELECT * FROM volunteer.run WHERE id = (SELECT count(*) FROM pg_attribute)",
    "SELECT * FROM volunteer.run WHERE id IN (SELECT 1 FROM generate_series(1, 9))",
    "SELECT * FROM volunteer.run -- a comment hides what follows\n",
    "SELECT * FROM volunteer.run /* or this */",
    "SELECT * FROM pg_catalog.pg_attribute",
    "COPY (SELECT * FROM volunteer.run, generate_series(1, 9)) TO STDOUT WITH (FORMAT binary)",
    "COPY (SELECT * FROM volunteer.run) TO '/tmp/x'",
    "COPY volunteer.result_uploads (payload) FROM PROGRAM 'yes'",
    "COPY volunteer.result_submissions (payload) FROM PROGRAM 'yes'",
    "SELECT current_setting('is_superuser')",
    "LOCK TABLE volunteer.result_uploads IN ROW EXCLUSIVE MODE",
    "NOTIFY ganfriends_work",
    "LISTEN other_channel",
    "SELECT pg_advisory_lock(1)",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
    "",
]


@pytest.mark.parametrize("statement", ENGINE)
def test_the_engines_statements_pass(statement: str) -> None:
    assert is_engine_statement(statement)


@pytest.mark.parametrize("statement", HOSTILE)
def test_anything_else_does_not(statement: str) -> None:
    assert not is_engine_statement(statement)


def test_a_truncated_statement_is_never_the_engines() -> None:
    assert not is_engine_statement("SELECT volunteer.touch(1, 'x')", truncated=True)
