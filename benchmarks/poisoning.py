"""Poisoning: k of N volunteers cheat with one strategy each run; what verification costs and catches.

For every attack of tests/coordinator/attacks.py (or `--attack`), a run of the tiny test model
is trained to `--versions` versions by N volunteers of whom k cheat, under the run's
verification policy (`--policy`, `--trust-after`, `--spot-check`), and compared with the
reference trainer's run of the same length (the honest run). With `--turn-after M` the
cheaters first send M honest results (to earn trust, if M is large enough) and cheat after.

What is real: the coordinator (validation, verification, quarantine, rollback), the SQLite
database, the bytes of every payload, each volunteer's computation (the real unit math on the
tiny model). What is simulated: the volunteers are objects in this process taking turns
(`LocalWorker`), not machines, in a shuffled order each turn; the spot-check draws and the
order come from seeded generators, so a run can be repeated. Compute is counted in unit computations (every unit of the tiny model costs the
same), so the shares below do not depend on this machine.

Printed per attack:
- caught after: bad results each cheater sent before it was quarantined ("never": it was not),
- overhead: unit computations beyond the one per unit that counts, as % of all computations,
  over the whole run and over the versions after every honest volunteer was trusted,
- |Δw| max: the largest absolute difference of the final weights to the honest run (0 = equal),
- false +: honest volunteers quarantined or outvoted,
- replayed: versions computed again after a trusted cheater was caught (rollback),
- latency: rounds (every volunteer asks for one unit) per version, ÷ the same run with
  verification off and nobody cheating (measured first, in the same process).

    .venv/bin/python -m benchmarks.poisoning [--volunteers 6] [--cheaters 1] [--versions 24]
        [--attack sign_flipped,zeros] [--turn-after 0] [--policy adaptive]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from coordinator.loop import Coordinator
from core.store.trust import Quarantined
from tests.coordinator.attacks import ATTACKS, Cheater
from tests.coordinator.harness import make_tiny_run, published_params, reference_params
from tests.coordinator.simulate import LocalWorker

MAX_PASSES_PER_VERSION = 400


@dataclass(frozen=True)
class Outcome:
    attack: str
    caught_after: list[int]  # per cheater: bad results sent before quarantine (-1: never caught)
    overhead: float  # extra computations / all computations
    overhead_trusted: float | None  # the same after every honest volunteer was trusted
    max_diff: float
    false_positives: int
    replayed: int  # versions gone back over (rollback after a trusted cheater was caught)
    rounds_per_version: float  # rounds (every volunteer one turn) per published version
    seconds: float


def run_attack(args: argparse.Namespace, attack: str, workdir: Path) -> Outcome:
    started = time.perf_counter()
    run = make_tiny_run(
        workdir,
        verification=args.policy,
        trust_after=args.trust_after,
        spot_check=args.spot_check,
        keep_versions=args.versions + 1,  # every version kept: a caught cheater is undone fully
        num_workunits_per_update=args.units,
    )
    store = run.store()
    coordinator = Coordinator(store)
    coordinator.verifier.poll_every_s = 0.0
    coordinator.verifier._random = random.Random(args.seed)  # type: ignore[assignment]
    honest = [LocalWorker(run, store, f"honest{i}") for i in range(args.volunteers - args.cheaters)]
    cheaters = [
        Cheater(run, store, f"cheater{i}", attack, honest_first=args.turn_after)
        for i in range(args.cheaters)
    ]
    everyone: list[LocalWorker] = [*honest, *cheaters]
    turns = random.Random(args.seed + 1)  # who asks for work first, as machines race
    computations = computations_at_trust = 0
    counted_at_trust = 0
    trusted_at: int | None = None
    caught_after = {c.name: -1 for c in cheaters}
    replayed = 0
    passes = 0
    while coordinator.version < args.versions:
        passes += 1
        if passes > MAX_PASSES_PER_VERSION * args.versions:
            raise RuntimeError(f"{attack}: stuck at version {coordinator.version}")
        turns.shuffle(everyone)
        for worker in everyone:
            with contextlib.suppress(Quarantined):
                if worker.work_one() is not None:
                    computations += 1
        before = coordinator.version
        coordinator.step()
        replayed += max(0, before - coordinator.version)  # went back: computed again
        records = {r.record.identity: r.record for r in store.trust_rows()}
        for cheater in cheaters:
            record = records.get(cheater.name)
            if caught_after[cheater.name] < 0 and record is not None and record.quarantined:
                caught_after[cheater.name] = cheater.cheated
        if trusted_at is None and all(
            records.get(w.name) is not None and records[w.name].earned >= args.trust_after
            for w in honest
        ):
            trusted_at = coordinator.version
            computations_at_trust = computations
            counted_at_trust = coordinator.version * args.units
    counted = args.versions * args.units
    overhead = 1 - counted / computations
    overhead_trusted = None
    if trusted_at is not None and computations > computations_at_trust:
        overhead_trusted = 1 - (counted - counted_at_trust) / (computations - computations_at_trust)
    final = published_params(store, args.versions)
    reference = reference_params(run, args.versions)
    max_diff = max(float((final[n] - reference[n]).abs().max()) for n in reference)
    records = {r.record.identity: r.record for r in store.trust_rows()}
    false_positives = sum(
        1
        for w in honest
        if w.name in records and (records[w.name].quarantined or records[w.name].outvoted)
    )
    store.dispose()
    return Outcome(
        attack,
        list(caught_after.values()),
        overhead,
        overhead_trusted,
        max_diff,
        false_positives,
        replayed,
        passes / args.versions,
        time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volunteers", type=int, default=6)
    parser.add_argument("--cheaters", type=int, default=1)
    parser.add_argument("--versions", type=int, default=24)
    parser.add_argument("--units", type=int, default=3, help="units per version")
    parser.add_argument("--attack", default=",".join(ATTACKS), help="comma-separated")
    parser.add_argument("--turn-after", type=int, default=0, help="honest results first")
    parser.add_argument("--policy", default="adaptive", choices=("off", "quorum", "adaptive"))
    parser.add_argument("--trust-after", type=int, default=3)
    parser.add_argument("--spot-check", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1, help="spot-check draws")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # each catch is logged: the table says it
    if not 0 <= args.cheaters < args.volunteers:
        parser.error("--cheaters must be at least 0 and fewer than --volunteers")
    print(
        f"{args.volunteers} volunteers, {args.cheaters} cheating, {args.versions} versions × "
        f"{args.units} units; policy {args.policy} (trust after {args.trust_after}, spot-check "
        f"{args.spot_check:.0%}); cheaters honest for their first {args.turn_after} results"
    )
    baseline = run_attack(
        argparse.Namespace(**{**vars(args), "policy": "off", "cheaters": 0}),
        "none",
        Path(tempfile.mkdtemp(prefix="poisoning_")),
    )
    print(
        f"baseline (verification off, nobody cheating): {baseline.rounds_per_version:.2f} rounds "
        "per version (a round: every volunteer asks for one unit); 'latency' below is rounds per "
        "version ÷ this"
    )
    header = (
        f"{'attack':<20} {'caught after':>12} {'overhead':>9} {'once trusted':>12} "
        f"{'|Δw| max':>9} {'false +':>7} {'replayed':>8} {'latency':>7} {'s':>5}"
    )
    print(header)
    for attack in args.attack.split(","):
        with tempfile.TemporaryDirectory(prefix="poisoning_") as tmp:
            o = run_attack(args, attack.strip(), Path(tmp))
        caught = ",".join("never" if c < 0 else str(c) for c in o.caught_after) or "—"
        trusted = "—" if o.overhead_trusted is None else f"{o.overhead_trusted:.1%}"
        print(
            f"{o.attack:<20} {caught:>12} {o.overhead:>9.1%} {trusted:>12} "
            f"{o.max_diff:>9.2g} {o.false_positives:>7} {o.replayed:>8} "
            f"{o.rounds_per_version / baseline.rounds_per_version:>7.2f} {o.seconds:>5.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
