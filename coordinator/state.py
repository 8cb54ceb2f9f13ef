"""The run's state as the coordinator stores it: published weights and the optimizer state.

Workers compute with the published weights, stored in the run's `weights_precision`. With fp32
they are the master weights themselves. With bf16 they are the master weights rounded (half the
bytes every worker downloads per version), and the fp32 master weights travel with the Adam
moments in the optimizer state, which only the coordinator reads. The learning rate a close
used is kept in the published weights' metadata, so that a coordinator that dies between
publishing a version and storing its optimizer state can redo that step exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from core.codec import Precision, decode_named, encode_named, precision_dtype
from core.model import ModelConfig
from core.training import AdamState

MAX_STATE_BYTES = 4 * 1024**3  # published weights / optimizer state are at most this big
MASTER = "master."  # prefix of the fp32 master weights inside the optimizer state


def encode_weights(
    params: Mapping[str, Tensor],
    precision: Precision,
    model: ModelConfig,
    version: int,
    lr: float,
) -> bytes:
    """The published weights of `version`: `params` in `precision`, with their metadata."""
    dtype = precision_dtype(precision)
    published = {name: t.to(dtype) for name, t in params.items()}
    metadata = {"model_config": model.to_json(), "version": str(version), "lr": repr(lr)}
    return encode_named(published, metadata)


def decode_weights(data: bytes) -> tuple[dict[str, Tensor], float | None]:
    """Published weights as fp32 tensors, and the lr of the step that made them (if recorded)."""
    tensors, metadata = decode_named(data, MAX_STATE_BYTES)
    lr = metadata.get("lr")
    return {name: t.float() for name, t in tensors.items()}, None if lr is None else float(lr)


def encode_optimizer_state(adam: AdamState, master: Mapping[str, Tensor] | None) -> bytes:
    """Adam's moments and step, plus the fp32 master weights when the published are rounded."""
    tensors = adam.to_tensors()
    if master is not None:
        tensors.update({MASTER + name: t for name, t in master.items()})
    return encode_named(tensors, {"step": str(adam.step)})


def decode_optimizer_state(data: bytes) -> tuple[AdamState, dict[str, Tensor] | None]:
    """(Adam state, fp32 master weights or None) from `encode_optimizer_state`'s bytes."""
    tensors, metadata = decode_named(data, MAX_STATE_BYTES)
    master = {n.removeprefix(MASTER): t for n, t in tensors.items() if n.startswith(MASTER)}
    moments = {n: t for n, t in tensors.items() if not n.startswith(MASTER)}
    return AdamState.from_tensors(int(metadata["step"]), moments), master or None
