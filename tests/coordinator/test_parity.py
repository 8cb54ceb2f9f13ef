"""Trajectory parity: the distributed run equals the reference trainer bitwise, whatever happens."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time

import pytest

from tests.coordinator.harness import (
    assert_bitwise_equal,
    make_tiny_run,
    published_params,
    reference_params,
    serve_until,
    start_worker,
    stop_processes,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

VERSIONS = 4


@pytest.mark.parametrize(
    ("workers", "weights_precision", "inner_steps"),
    [
        (1, "fp32", 1),
        (3, "fp32", 1),
        (3, "bf16", 1),
        (1, "fp32", 3),  # local steps: 3 inner SGD steps per unit, outer Adam
        (3, "fp32", 3),
    ],
)
def test_distributed_run_equals_reference(tmp_path, workers, weights_precision, inner_steps):
    run = make_tiny_run(tmp_path, weights_precision=weights_precision, inner_steps=inner_steps)
    procs = [start_worker(run, f"w{i}") for i in range(workers)]
    try:
        store = run.store()
        serve_until(store, VERSIONS)
        got = published_params(store, VERSIONS)
    finally:
        stop_processes(procs)
    assert_bitwise_equal(got, reference_params(run, VERSIONS))
    done = {w.name: w.units for w in store.workers()}
    assert sum(done.values()) >= VERSIONS * run.settings.num_workunits_per_update


def test_a_worker_started_with_no_flags_computes_what_the_reference_computes(tmp_path):
    # As the lab service starts it: no --threads. The engine applies the run's compute_threads
    # (1), not the cores it finds, so the run stays bitwise the reference's.
    run = make_tiny_run(tmp_path)
    procs = [start_worker(run, "lab-pc", threads=None)]
    try:
        store = run.store()
        serve_until(store, 2)
        got = published_params(store, 2)
    finally:
        stop_processes(procs)
    assert_bitwise_equal(got, reference_params(run, 2))


def test_units_per_version_and_lr_changed_mid_run_with_set(tmp_path):
    """`set` between closes: version k keeps the units it was designated with, its close takes
    the new learning rate, and version k+1 has the new number of units."""
    run = make_tiny_run(tmp_path)
    changed = dataclasses.replace(run.settings, num_workunits_per_update=5, lr=3e-3)
    procs = [start_worker(run, f"w{i}") for i in range(3)]
    try:
        store = run.store()
        serve_until(store, 2)
        store.update_settings({"num_workunits_per_update": 5, "lr": 3e-3})
        serve_until(store, VERSIONS + 1)
        got = published_params(store, VERSIONS + 1)
        units = {m.version: m.units + m.parked_units for m in store.metrics()}
    finally:
        stop_processes(procs)
    assert units == {0: 3, 1: 3, 2: 3, 3: 5, 4: 5}
    expected = reference_params(
        run, VERSIONS + 1, settings_at=lambda v: run.settings if v < 2 else changed
    )
    assert_bitwise_equal(got, expected)


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_worker_killed_mid_unit(tmp_path, inner_steps):
    # Units slow enough to be caught mid-compute; a short lease so the re-issue comes soon.
    run = make_tiny_run(
        tmp_path,
        images_per_work_unit=30,
        batch_size=2,
        lease_s=2.0,
        backup_after_s=60.0,
        inner_steps=inner_steps,
    )
    victim = start_worker(run, "victim")
    store = run.store()
    wait_for(lambda: any(u.status == "leased" for u in store.version_units(0)), timeout_s=60)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = start_worker(run, "survivor")
    try:
        serve_until(store, 2)
        got = published_params(store, 2)
    finally:
        stop_processes([survivor])
    assert_bitwise_equal(got, reference_params(run, 2))


CRASHY_COORDINATOR = """
import sys, time
from pathlib import Path
from core.store import Store, open_store
from coordinator.loop import Coordinator
marker, where = Path(sys.argv[2]), sys.argv[3]
original_publish, original_state = Store.publish_version, Store.store_optimizer_state
def slow_publish(self, *args, **kwargs):
    if where != "publish":
        return original_publish(self, *args, **kwargs)
    with self.session():  # the publish's own transaction joins this one
        original_publish(self, *args, **kwargs)
        marker.write_text("inside the publishing transaction")
        time.sleep(30)
def slow_state(self, *args, **kwargs):
    if where == "state":  # published and committed; the optimizer state not yet written
        marker.write_text("between the publish and the optimizer state")
        time.sleep(30)
    return original_state(self, *args, **kwargs)
Store.publish_version, Store.store_optimizer_state = slow_publish, slow_state
Coordinator(open_store(sys.argv[1])).serve(__import__("threading").Event(), 0.01)
"""


@pytest.mark.parametrize(
    ("where", "published", "weights_precision", "inner_steps"),
    [
        ("publish", 0, "fp32", 1),  # the publishing transaction is open: nothing is visible
        ("state", 1, "fp32", 1),  # published, but killed before the Adam state is written
        ("state", 1, "bf16", 1),  # … and the fp32 master weights with it
        ("publish", 0, "fp32", 3),  # local steps: the outer Adam state
        ("state", 1, "bf16", 3),
    ],
)
def test_coordinator_killed_mid_close(tmp_path, where, published, weights_precision, inner_steps):
    run = make_tiny_run(tmp_path, weights_precision=weights_precision, inner_steps=inner_steps)
    marker = tmp_path / "closing"
    procs = [start_worker(run, f"w{i}") for i in range(2)]
    try:
        crashy = subprocess.Popen(
            [sys.executable, "-c", CRASHY_COORDINATOR, run.url, str(marker), where], env=run.env
        )
        wait_for(marker.exists, timeout_s=90)
        crashy.send_signal(signal.SIGKILL)
        crashy.wait()
        store = run.store()
        assert store.get_run().version == published
        if where == "state":  # the state of version 1 is missing: the restart must rebuild it
            assert store.newest_optimizer_state()[0] == 0
        time.sleep(0.2)
        serve_until(store, VERSIONS)
        got = published_params(store, VERSIONS)
    finally:
        stop_processes(procs)
    assert_bitwise_equal(got, reference_params(run, VERSIONS))
