"""The worker engine against a real SQLite run: events, controls, and the run's micro-batch."""

from __future__ import annotations

import itertools
import signal
import threading
import time

import pytest
import torch

from core import worker
from core.cache import ShardCache
from core.codec import decode_tensors
from core.model import gan_from_parameters, parameter_manifest
from core.reference import initial_state
from core.schedule import plan_unit
from core.training import intra_op_threads, unit_gradients
from core.worker import WorkerEngine, WorkerEvent, WorkerOptions
from tests.coordinator.harness import (
    DATASET_IMAGES,
    make_tiny_run,
    start_worker,
    stop_processes,
    wait_for,
)


def engine_for(run, tmp_path, events, **options):
    opts = WorkerOptions(name="t", hostname="h", device=torch.device("cpu"), threads=1, **options)
    return WorkerEngine(run.store, ShardCache(tmp_path / "shards"), opts, on_event=events.append)


def test_engine_computes_with_the_runs_micro_batch_and_reports_events(tmp_path):
    run = make_tiny_run(tmp_path)
    events: list[WorkerEvent] = []
    engine = engine_for(run, tmp_path, events, max_units=1)
    assert engine.run() == 1
    store = run.store()
    [result] = store.new_results(10)
    grads = decode_tensors(
        store.result_payload(result.id),
        parameter_manifest(run.model),
        precision="fp32",
        max_bytes=1 << 30,
    )
    # Recompute the unit with the run's micro-batch: the worker's result must equal it bitwise.
    unit = plan_unit(
        run.settings.seed, DATASET_IMAGES, run.settings.images_per_work_unit, result.unit_index
    )
    gan = gan_from_parameters(run.model, initial_state(run.model, run.settings).params)
    images = run.images()[list(unit.sample_indices)]
    with intra_op_threads(1):
        expected = unit_gradients(gan, images, unit.seed, run.settings.batch_size).grads
    assert all(torch.equal(grads[n], expected[n]) for n in expected)
    states = [e.state for e in events]
    assert "downloading" in states and "computing" in states and "uploading" in states
    assert any(e.kind == "unit_finished" and e.images == 12 for e in events)


def test_pause_stops_new_units_and_resume_continues(tmp_path):
    run = make_tiny_run(tmp_path)
    events: list[WorkerEvent] = []
    engine = engine_for(run, tmp_path, events)
    engine.pause("test pause")
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        wait_for(lambda: engine.state == "paused", timeout_s=10)
        time.sleep(0.3)
        assert run.store().new_results(10) == []
        engine.resume()
        wait_for(lambda: engine.units_done >= 1, timeout_s=30)
    finally:
        engine.stop()
        thread.join(30)
    assert any(e.message == "Paused: test pause" for e in events)


def test_paused_run_issues_nothing_and_the_worker_waits(tmp_path):
    run = make_tiny_run(tmp_path)
    run.store().set_status("paused")
    events: list[WorkerEvent] = []
    engine = engine_for(run, tmp_path, events)
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        # The state changes just before its event is delivered: wait for the event itself.
        wait_for(lambda: any("paused by its owner" in e.message for e in events), timeout_s=10)
        assert engine.state == "paused"
        assert engine.units_done == 0
    finally:
        engine.stop()
        thread.join(30)


@pytest.mark.slow
def test_sigterm_releases_the_lease_at_once(tmp_path):
    run = make_tiny_run(tmp_path, images_per_work_unit=30, batch_size=2, lease_s=600.0)
    proc = start_worker(run, "terminated")
    store = run.store()
    try:
        wait_for(lambda: any(u.status == "leased" for u in store.version_units(0)), timeout_s=60)
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        stop_processes([proc])
    assert proc.returncode == 0
    units = store.version_units(0)
    # A 600 s lease would otherwise hold the unit for ten minutes.
    assert not any(u.status == "leased" for u in units)
    assert any(u.status == "pending" and u.attempts == 0 for u in units)


@pytest.mark.slow
def test_worker_does_not_exit_when_there_is_no_work(tmp_path):
    run = make_tiny_run(tmp_path)
    run.store().set_status("paused")
    proc = start_worker(run, "patient")
    try:
        time.sleep(4)
        assert proc.poll() is None
    finally:
        stop_processes([proc])


def test_a_fast_worker_claims_its_next_unit_while_computing_and_gives_it_back_at_the_end(
    tmp_path,
):
    # One version of 3 units, no coordinator: once a worker knows its units take well under
    # CLAIM_AHEAD_BELOW_S, it claims the next while computing the current one.
    run = make_tiny_run(tmp_path)
    store = run.store()
    claims: list[tuple[float, int]] = []  # (time, unit index) of every claim
    computed: list[tuple[float, float]] = []  # (start, end) of every unit's compute
    engine = engine_for(run, tmp_path, [])
    claim, compute = store.claim, engine._compute

    def timed_claim(worker_id):
        lease = claim(worker_id)
        if lease is not None:
            claims.append((time.monotonic(), lease.unit_index))
        return lease

    def timed_compute(*args):
        start = time.monotonic()
        out = compute(*args)
        computed.append((start, time.monotonic()))
        if len(computed) == 2:
            engine.stop()  # after the second unit: its result still goes up, the third back
        return out

    store.claim = timed_claim  # type: ignore[method-assign]
    engine._connect_fn = lambda: store
    engine._compute = timed_compute
    assert engine.run() == 2
    # The first unit's time was unknown, so the second was claimed after it; the third was
    # claimed while the second computed (its claim starts just before that compute does, so
    # it may land before the compute's first timestamp, never after its last) …
    assert len(claims) == 3 and computed[0][1] < claims[1][0]
    assert claims[1][0] < claims[2][0] < computed[1][1]
    # … and given back at the stop: pending again, the attempt returned.
    third = next(u for u in store.version_units(0) if u.unit_index == claims[2][1])
    assert (third.status, third.attempts) == ("pending", 0)


def test_a_claim_ahead_that_found_nothing_is_not_asked_again_at_once(tmp_path):
    # One version of 2 units, no coordinator: the second unit's claim ahead finds nothing; after
    # that unit the worker waits for work instead of claiming again at once (a write that would
    # compete with its own upload of what is often the version's last result).
    run = make_tiny_run(tmp_path, num_workunits_per_update=2)
    store = run.store()
    claims: list[tuple[float, bool, str]] = []  # (time, a unit came back, thread) of each claim
    computed: list[float] = []  # when each unit's compute ended
    engine = engine_for(run, tmp_path, [])
    claim, compute = store.claim, engine._compute

    def timed_claim(worker_id):
        lease = claim(worker_id)
        claims.append((time.monotonic(), lease is not None, threading.current_thread().name))
        return lease

    def timed_compute(*args):
        out = compute(*args)
        computed.append(time.monotonic())
        if len(computed) == 2:
            threading.Timer(1.0, engine.stop).start()
        return out

    store.claim = timed_claim  # type: ignore[method-assign]
    engine._connect_fn = lambda: store
    engine._compute = timed_compute
    assert engine.run() == 2
    assert [got for _, got, name in claims if name == "claim-ahead"] == [False]
    main = [t for t, _, name in claims if name != "claim-ahead" and t > computed[1]]
    assert main, "the worker never looked for work again"
    assert main[0] - computed[1] >= worker.IDLE_POLL_MIN_S * 0.9


def _wrap_gather(engine, wrapper) -> None:
    """From the engine's connection on, its unit images come through `wrapper(gather, indices)`."""
    connect = engine._ensure_connected

    def connected():
        connected_store = connect()
        fetcher = engine._fetcher
        if fetcher is not None and not hasattr(fetcher.images, "wrapped"):
            gather = fetcher.images

            def wrapped(indices):
                return wrapper(gather, indices)

            wrapped.wrapped = True  # type: ignore[attr-defined]
            fetcher.images = wrapped
        return connected_store

    engine._ensure_connected = connected


def test_all_of_a_units_tensor_work_runs_on_the_units_threads(tmp_path):
    # Not only the compute: the images gathered for a unit (here with 2 intra-op threads as the
    # process default) took ~40 ms instead of 0.5 ms beside a computing unit in the demo.
    run = make_tiny_run(tmp_path, num_workunits_per_update=2)
    store = run.store()
    engine = engine_for(run, tmp_path, [], max_units=2)  # threads=1
    seen: list[int] = []  # torch's thread count whenever the worker gathers a unit's images
    engine._connect_fn = lambda: store

    def watched(gather, indices):
        seen.append(torch.get_num_threads())
        return gather(indices)

    _wrap_gather(engine, watched)
    with intra_op_threads(2):
        assert engine.run() == 2
        assert torch.get_num_threads() == 2  # the caller's count again
    assert seen and set(seen) == {1}


def _record_heartbeats(store) -> list[tuple[float, int]]:
    """(time, unit index) of every heartbeat the store renews from now on."""
    beats: list[tuple[float, int]] = []
    heartbeat = store.heartbeat

    def recorded(lease):
        renewed = heartbeat(lease)
        beats.append((time.monotonic(), lease.unit_index))
        return renewed

    store.heartbeat = recorded
    return beats


def _renewed_throughout(beats, unit_index, start, end, lease_s) -> bool:
    """Whether the unit's lease was renewed at least every lease_s from `start` to `end`."""
    times = [start, *(t for t, unit in beats if unit == unit_index and start < t < end), end]
    return all(later - earlier < lease_s for earlier, later in itertools.pairwise(times))


def test_a_unit_whose_download_outlasts_the_lease_is_renewed_while_it_downloads(tmp_path):
    # The heartbeat starts at the claim: a first unit whose images take longer than lease_s to
    # arrive (a slow home link, a cold cache) stays this worker's. It used to start after the
    # download, and such a unit was re-issued to another worker while it downloaded.
    lease_s, download_s = 1.0, 2.5
    run = make_tiny_run(tmp_path, lease_s=lease_s)
    store = run.store()
    beats = _record_heartbeats(store)
    claims: list[tuple[float, int]] = []
    downloads: list[tuple[float, float]] = []  # (start, end) of each unit's images
    claim = store.claim

    def timed_claim(worker_id):
        lease = claim(worker_id)
        if lease is not None:
            claims.append((time.monotonic(), lease.unit_index))
        return lease

    store.claim = timed_claim  # type: ignore[method-assign]
    engine = engine_for(run, tmp_path, [], max_units=1)
    engine._connect_fn = lambda: store

    def slow(gather, indices):
        start = time.monotonic()
        time.sleep(download_s)
        images = gather(indices)
        downloads.append((start, time.monotonic()))
        return images

    _wrap_gather(engine, slow)
    assert engine.run() == 1
    [(claimed, unit_index)] = claims
    [(_, downloaded)] = downloads
    assert downloaded - claimed > download_s
    assert _renewed_throughout(beats, unit_index, claimed, downloaded, lease_s), beats
    [unit] = [u for u in store.version_units(0) if u.unit_index == unit_index]
    assert unit.attempts == 1


def test_a_unit_claimed_ahead_is_renewed_while_it_waits_for_the_current_one(tmp_path):
    # A fast worker claims its next unit while the current one computes; if that computing
    # takes longer than lease_s (a unit slower than the last, a busy computer), the unit
    # waiting behind it keeps its lease.
    lease_s, slow_s = 1.0, 2.5
    run = make_tiny_run(tmp_path, lease_s=lease_s)
    store = run.store()
    beats = _record_heartbeats(store)
    claims: list[tuple[float, int, str]] = []  # (time, unit index, thread) of every claim
    computed: list[tuple[float, float]] = []  # (start, end) of every unit's compute
    claim = store.claim

    def timed_claim(worker_id):
        lease = claim(worker_id)
        if lease is not None:
            claims.append((time.monotonic(), lease.unit_index, threading.current_thread().name))
        return lease

    engine = engine_for(run, tmp_path, [], max_units=3)
    compute = engine._compute

    def timed_compute(*args):
        start = time.monotonic()
        out = compute(*args)
        if len(computed) == 1:  # the second unit: fast to compute, slow to finish
            time.sleep(slow_s)
        computed.append((start, time.monotonic()))
        return out

    store.claim = timed_claim  # type: ignore[method-assign]
    engine._connect_fn = lambda: store
    engine._compute = timed_compute
    assert engine.run() == 3
    [(claimed, unit_index)] = [(t, u) for t, u, name in claims if name == "claim-ahead"]
    started = computed[2][0]  # the unit claimed ahead starts once the second is done
    # Claimed while the second unit was on (its claim starts just before that compute does,
    # so it may land before the compute's first timestamp, never after its last).
    assert claimed < computed[1][1] and started - claimed > slow_s * 0.9
    assert _renewed_throughout(beats, unit_index, claimed, started, lease_s), beats
    assert all(u.attempts == 1 for u in store.version_units(0))


def test_the_runs_settings_are_read_beside_the_weights_download(tmp_path):
    # A round trip or four off every version's start: with 32 volunteers starting together,
    # the settings read after the download took up to 0.1 s more (benchmarks/README.md).
    run = make_tiny_run(tmp_path)
    store = run.store()
    both = threading.Barrier(2, timeout=5)  # passed only if the two reads are under way at once
    claimed = threading.Event()
    met: list[str] = []
    claim, get_run, version_weights = store.claim, store.get_run, store.version_weights

    def claim_then_arm(worker_id):
        lease = claim(worker_id)
        claimed.set()  # the version's load comes next: its settings read and its download
        return lease

    def settings():
        if claimed.is_set() and "settings" not in met:
            met.append("settings")
            both.wait()
        return get_run()

    def download(version):
        if "weights" not in met:
            met.append("weights")
            both.wait()
        return version_weights(version)

    store.claim, store.get_run, store.version_weights = claim_then_arm, settings, download  # type: ignore[method-assign]
    engine = engine_for(run, tmp_path, [], max_units=1)
    engine._connect_fn = lambda: store
    assert engine.run() == 1
    assert sorted(met) == ["settings", "weights"] and not both.broken
