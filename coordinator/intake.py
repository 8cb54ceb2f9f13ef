"""Reading and decoding submitted results in parallel, while verdicts and the sum stay in order.

A 64×64 result is 24 MiB: reading it from the database, checking its header and layout,
converting it to fp32 and taking its norm cost 0.2-0.4 s on one core. With 32 volunteers that
is the whole close budget many times over, so the coordinator hands those steps to a small
thread pool (the database driver, safetensors and torch release the GIL for the heavy parts).
What stays sequential is everything that decides the trajectory: the norm bound (from the
history of accepted norms), each verdict, and the sum, which is always in unit order.

Decoded results that arrive before their turn in unit order are held in memory up to a cap, so
the coordinator never reads a payload twice unless the cap was reached.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from torch import Tensor

from core.codec import PayloadError, global_norm
from core.store import DamagedData

MAX_DECODE_THREADS = 8  # threads reading and decoding results at once
READ_BYTES = 64 * 1024**2  # payload bytes one read of a group of results may hold, about
HELD_MAX_BYTES = 1024**3  # decoded results held for their turn in unit order, at most


@dataclass(frozen=True)
class Decoded:
    """A result's gradients (fp32, checked against the manifest) and their global L2 norm."""

    grads: dict[str, Tensor]
    norm: float

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.grads.values())


def decode_threads() -> int:
    """Threads for decoding: the cores this process may use, at most MAX_DECODE_THREADS."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return max(1, min(MAX_DECODE_THREADS, available or os.cpu_count() or 1))


class ResultIntake:
    """Reads and decodes results in a thread pool; `decode_all` keeps the caller's order."""

    def __init__(
        self,
        read: Callable[[Sequence[int]], Mapping[int, bytes | DamagedData]],
        decode: Callable[[bytes], dict[str, Tensor]],
        per_read: int = 1,
    ) -> None:
        self._read = read  # result ids → their payloads (a Store method: one transaction)
        self._decode = decode  # payload → validated fp32 gradients, or raises PayloadError
        self.per_read = per_read  # results one read may hold (READ_BYTES ÷ a payload's size)
        self._threads = decode_threads()
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="decode")

    def decode_all(self, result_ids: Sequence[int]) -> list[Decoded | PayloadError | DamagedData]:
        """Each result decoded, or the error that refused it (a bad payload, or a stored one
        that fails its checksum), in the order given.

        The results are read a group at a time, one query each (a class's 32 small results
        took 32 transactions before), and the groups are spread over the threads. Other
        database errors propagate (the caller's retry logic handles a lost database).
        """
        if not result_ids:
            return []
        size = max(1, min(self.per_read, math.ceil(len(result_ids) / self._threads)))
        groups = [result_ids[i : i + size] for i in range(0, len(result_ids), size)]
        if len(groups) == 1:
            return self._group(groups[0])
        return [outcome for part in self._pool.map(self._group, groups) for outcome in part]

    def expect(self, payload_bytes: int) -> None:
        """Size the reads for payloads of `payload_bytes`: as many as READ_BYTES holds."""
        self.per_read = max(1, READ_BYTES // payload_bytes)

    def decode_one(self, result_id: int) -> Decoded:
        """One result, decoded in the caller's thread; raises PayloadError if refused."""
        (outcome,) = self._group([result_id])
        if isinstance(outcome, PayloadError | DamagedData):
            raise outcome
        return outcome

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def closer(self) -> Callable[[], None]:
        """Shuts the thread pool down; holds no reference to this intake's callers, so an
        owner can hand it to `weakref.finalize` and still be garbage-collected."""
        return self._pool.shutdown

    def _group(self, result_ids: Sequence[int]) -> list[Decoded | PayloadError | DamagedData]:
        payloads = dict(self._read(result_ids))
        return [self._one(payloads.pop(result_id)) for result_id in result_ids]

    def _one(self, payload: bytes | DamagedData) -> Decoded | PayloadError | DamagedData:
        if isinstance(payload, DamagedData):
            return payload
        try:
            grads = self._decode(payload)
        except PayloadError as exc:
            return exc
        return Decoded(grads, global_norm(grads))


class HeldResults:
    """Accepted results decoded ahead of their turn in unit order, up to a memory cap."""

    def __init__(self, max_bytes: int = HELD_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._held: dict[int, Decoded] = {}
        self._bytes = 0

    def keep(self, unit_index: int, decoded: Decoded) -> bool:
        """Hold a result for later; False (not held: re-read it then) when over the cap."""
        size = decoded.nbytes
        if unit_index in self._held or self._bytes + size > self._max_bytes:
            return False
        self._held[unit_index] = decoded
        self._bytes += size
        return True

    def take(self, unit_index: int) -> Decoded | None:
        decoded = self._held.pop(unit_index, None)
        if decoded is not None:
            self._bytes -= decoded.nbytes
        return decoded

    def clear(self) -> None:
        self._held.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._held)
