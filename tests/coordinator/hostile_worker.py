"""A hostile worker as a real process (tests and benchmarks only): the real worker engine, the
real claim, download, heartbeat and upload, but every result it computes is turned by one
attack of tests/coordinator/attacks.py before it is sent.

    python -m tests.coordinator.hostile_worker --db URL | --invite CODE --name N --attack A

The attack sees only what a cheating volunteer's own machine has: its computation, the unit's
seed and the run's settings (`copier` needs another volunteer's result, which a volunteer login
cannot read: it is tried in process only).
"""

from __future__ import annotations

import argparse
import copy
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import SimpleNamespace

import torch
from torch import Tensor

from core.cache import ShardCache
from core.config import RunSettings
from core.invite import decode_invite
from core.model import GAN
from core.paths import cache_dir
from core.store import open_store
from core.training import ProgressFn, StopFn, UnitResult
from core.unit_kinds import UnitKind, unit_kind
from core.worker import WorkerEngine, WorkerOptions
from tests.coordinator.attacks import ATTACKS

PROCESS_ATTACKS = tuple(a for a in ATTACKS if a != "copier")


@dataclass
class HostileUnits:
    """A unit kind that computes honestly, then applies the attack to what it computed."""

    real: UnitKind
    attack: str
    honest_first: int = 0  # results sent honestly first (to earn trust)
    sent: int = 0
    _first_gan: GAN | None = None  # `stale`: the weights it saw first, never refreshed

    @property
    def name(self) -> str:
        return self.real.name

    def compute(
        self,
        gan: GAN,
        images: Tensor,
        seed: int,
        settings: RunSettings,
        *,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> UnitResult:
        if self._first_gan is None:
            self._first_gan = copy.deepcopy(gan)
        turned = self.sent >= self.honest_first
        self.sent += 1
        used = self._first_gan if turned and self.attack == "stale" else gan
        honest = self.real.compute(
            used, images, seed, settings, progress=progress, should_stop=should_stop
        )
        if not turned or self.attack == "stale":
            return honest
        cheater = SimpleNamespace(run=SimpleNamespace(settings=settings))
        lease = SimpleNamespace(seed=seed)
        return replace(honest, grads=ATTACKS[self.attack](cheater, lease, honest))  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:  # the rest of the kind is the real one's
        return getattr(self.real, name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostile_worker", description=__doc__)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db")
    where.add_argument("--invite")
    parser.add_argument("--name", required=True)
    parser.add_argument("--attack", choices=PROCESS_ATTACKS, required=True)
    parser.add_argument("--honest-first", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    url = args.db or decode_invite(args.invite).url()
    options = WorkerOptions(
        name=args.name,
        hostname=socket.gethostname(),
        device=torch.device("cpu"),
        threads=args.threads,
    )
    kinds: dict[str, HostileUnits] = {}

    def kind_for(settings: RunSettings) -> UnitKind:
        real = unit_kind(settings)
        if real.name not in kinds:
            kinds[real.name] = HostileUnits(real, args.attack, args.honest_first)
        return kinds[real.name]  # type: ignore[return-value]

    cache = ShardCache(cache_dir() / "shards", 1 << 30)
    engine = WorkerEngine(lambda: open_store(url), cache, options, kind_for=kind_for)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: engine.stop())
    done = engine.run()
    print(f"hostile_worker: stopped after {done} unit(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
