"""Named tensors to and from safetensors bytes, with every check a payload from a stranger needs."""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import Tensor

from core.model import Manifest

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")

_PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

# safetensors dtype names we accept, in the order of safetensors' own `Dtype` enum: the writer
# lays tensors out by descending enum rank, then by name (needed by `payload_bytes`).
_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I32": torch.int32,
    "F32": torch.float32,
    "F64": torch.float64,
    "I64": torch.int64,
}
_DTYPE_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in _DTYPES.items()}
_DTYPE_RANK: dict[str, int] = {name: rank for rank, name in enumerate(_DTYPES)}

_LENGTH_PREFIX = 8  # bytes: little-endian u64 header length
_MAX_HEADER_BYTES = 1 << 20  # a GAN's header is a few KB; refuse to parse megabytes of JSON
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")  # torch.save files are zips
_METADATA_KEY = "__metadata__"


class PayloadError(ValueError):
    """A payload was refused; the message says what was wrong with it."""


class PayloadTooLarge(PayloadError):
    """The payload is bigger than the caller's size cap."""


class MalformedPayload(PayloadError):
    """Not a well-formed safetensors buffer (or a pickle / zip pretending to be one)."""


class ManifestMismatch(PayloadError):
    """Tensor names, shapes or dtypes differ from what the model expects."""


class NonFinitePayload(PayloadError):
    """A tensor holds NaN or Inf."""


class NormTooLarge(PayloadError):
    """The global L2 norm over all tensors is above the allowed bound."""


@dataclass(frozen=True)
class _Entry:
    """One tensor as the header describes it."""

    dtype: str  # safetensors dtype name, e.g. "F32"
    shape: tuple[int, ...]
    begin: int  # byte offsets into the data section, end exclusive
    end: int


def precision_dtype(precision: str) -> torch.dtype:
    """The torch dtype floating tensors travel in for `precision`."""
    try:
        return _PRECISION_DTYPES[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}") from None


def encode_tensors(tensors: Mapping[str, Tensor], precision: Precision = "fp32") -> bytes:
    """Safetensors bytes of `tensors`, floating ones cast to `precision`, no metadata."""
    dtype = precision_dtype(precision)
    return safetensors.torch.save(_travelling_form(tensors, dtype))


def quantize(tensors: Mapping[str, Tensor], precision: Precision) -> dict[str, Tensor]:
    """Exactly what `decode_tensors(encode_tensors(t, precision))` returns, without the bytes."""
    dtype = precision_dtype(precision)
    return {name: _to_fp32(t) for name, t in _travelling_form(tensors, dtype).items()}


def decode_tensors(
    data: bytes,
    manifest: Manifest,
    *,
    precision: Precision,
    max_bytes: int,
    max_norm: float | None = None,
) -> dict[str, Tensor]:
    """Validate an untrusted payload against `manifest` and return its tensors in fp32.

    Nothing is deserialised before the size cap, the hand-parsed header, the manifest and the
    byte layout have all been checked; then values must be finite and, if `max_norm` is given,
    the global L2 norm must not exceed it. Raises a `PayloadError` subclass on any failure.
    """
    dtype = precision_dtype(precision)
    _check_size(data, max_bytes)
    entries, _ = _parse_header(data)
    _check_manifest(entries, manifest, dtype)
    _check_layout(data, entries)
    tensors = {name: _to_fp32(t) for name, t in _load(data).items()}
    _check_finite(tensors)
    if max_norm is not None:
        norm = global_norm(tensors)
        if not norm <= max_norm:
            raise NormTooLarge(f"global L2 norm {norm:.6g} exceeds the bound {max_norm:.6g}")
    return tensors


def encode_named(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> bytes:
    """Safetensors bytes of `tensors` as they are (no cast) with string `metadata`."""
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ValueError(f"metadata keys and values must be strings; fix {bad!r}")
    prepared = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    return safetensors.torch.save(prepared, metadata=dict(metadata))


def decode_named(
    data: bytes, max_bytes: int, *, writable: bool = True
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors (dtypes as stored) and metadata of a weights / optimizer-state file.

    The same size, header and layout checks as `decode_tensors`, minus the manifest. With
    `writable=False` the tensors are read-only views, for a caller that only copies them (a
    worker loading weights into its model: a clone per tensor saved).
    """
    _check_size(data, max_bytes)
    entries, metadata = _parse_header(data)
    _check_layout(data, entries)
    loaded = _load(data)  # frombuffer views of immutable bytes: written, they would warn
    if not writable:
        return loaded, metadata
    return {name: t.clone() for name, t in loaded.items()}, metadata


def global_norm(tensors: Mapping[str, Tensor]) -> float:
    """sqrt(sum of squares) over every element of every tensor, accumulated in fp64."""
    # Fixed order, so the float sum does not depend on dict order.
    return math.sqrt(sum(_norm(tensors[name]) ** 2 for name in sorted(tensors)))


def non_finite(tensors: Mapping[str, Tensor]) -> list[str]:
    """The names of the floating-point tensors holding a NaN or an Inf, in `tensors`' order.

    One fp64-accumulated norm per tensor instead of `torch.isfinite(t).all()`, which builds a
    boolean tensor and was 60x slower here (0.6 s for a 64×64 model's weights and Adam state).
    The norm is finite exactly when every value is: a NaN or an Inf makes it NaN or Inf, and
    the square of the largest fp32, bf16 or fp16 value (3.4e38) is 1.2e77, so no sum of
    squares of them overflows fp64. fp64 tensors, which could, are checked value by value.
    """
    bad = []
    for name, t in tensors.items():
        if not t.is_floating_point():
            continue
        if t.dtype == torch.float64:
            finite = bool(torch.isfinite(t).all())
        else:
            finite = math.isfinite(_norm(t))
        if not finite:
            bad.append(name)
    return bad


def _norm(t: Tensor) -> float:
    """The L2 norm of `t`'s values, accumulated in fp64 (without an fp64 copy of `t`)."""
    return float(torch.linalg.vector_norm(t.detach(), dtype=torch.float64))


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of `data`, as published beside weights."""
    return hashlib.sha256(data).hexdigest()


def payload_bytes(manifest: Manifest, precision: Precision) -> int:
    """Exact length of `encode_tensors` output for tensors matching `manifest`."""
    dtype = precision_dtype(precision)
    specs = [
        (name, _DTYPE_NAMES[dtype if d.is_floating_point else d], shape)
        for name, (shape, d) in manifest.items()
    ]
    # safetensors' layout: descending dtype rank, then name; a compact JSON header
    specs.sort(key=lambda s: (-_DTYPE_RANK[s[1]], s[0]))
    header: dict[str, object] = {}
    offset = 0
    for name, dtype_name, shape in specs:
        size = _DTYPES[dtype_name].itemsize * math.prod(shape)
        header[name] = {
            "dtype": dtype_name,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header_len = len(json.dumps(header, separators=(",", ":")).encode())
    header_len += -(_LENGTH_PREFIX + header_len) % 8  # padded with spaces to 8-byte alignment
    return _LENGTH_PREFIX + header_len + offset


def _travelling_form(tensors: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """Contiguous CPU tensors, floating ones cast to `dtype`: exactly the bytes that are sent."""
    out = {}
    for name, t in tensors.items():
        target = dtype if t.is_floating_point() else t.dtype
        out[name] = t.detach().to(device="cpu", dtype=target).contiguous()
    return out


def _to_fp32(t: Tensor) -> Tensor:
    # copy=True: tensors loaded from bytes are views of an immutable buffer
    return t.to(torch.float32, copy=True) if t.is_floating_point() else t.clone()


def _check_size(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"payload is {len(data)} bytes, over the cap of {max_bytes} bytes")


def _parse_header(data: bytes) -> tuple[dict[str, _Entry], dict[str, str]]:
    """Read the header by hand: length prefix, then a JSON object describing every tensor."""
    if data[:4] in _ZIP_MAGICS:
        raise MalformedPayload("payload is a zip archive (torch.save format?), not safetensors")
    if len(data) < _LENGTH_PREFIX:
        raise MalformedPayload(f"payload is {len(data)} bytes, too short for a safetensors header")
    (length,) = struct.unpack("<Q", data[:_LENGTH_PREFIX])
    if _LENGTH_PREFIX + length > len(data):
        if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            raise MalformedPayload("payload is a pickle, not safetensors; it was not unpickled")
        raise MalformedPayload(
            f"header length {length} points past the end of the {len(data)}-byte payload"
        )
    if length > _MAX_HEADER_BYTES:
        raise MalformedPayload(f"header is {length} bytes, over the limit of {_MAX_HEADER_BYTES}")
    raw = _load_json(data[_LENGTH_PREFIX : _LENGTH_PREFIX + length])
    if not isinstance(raw, dict):
        raise MalformedPayload(f"header must be a JSON object, not {type(raw).__name__}")
    metadata = _parse_metadata(raw.pop(_METADATA_KEY, {}))
    return {name: _parse_entry(name, value) for name, value in raw.items()}, metadata


def _load_json(header: bytes) -> object:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            # two readers could disagree on which duplicate wins; refuse the ambiguity
            raise MalformedPayload(f"header repeats a key among {sorted(keys)[:10]}")
        return dict(pairs)

    def no_constants(token: str) -> object:
        raise MalformedPayload(f"header contains the non-JSON constant {token}")

    try:
        text = header.decode("utf-8")
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except MalformedPayload:
        raise
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, a 5,000-digit number
        raise MalformedPayload(f"header is not valid UTF-8 JSON: {exc}") from None


def _parse_metadata(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MalformedPayload(f"{_METADATA_KEY} must be an object of strings to strings")
    return cast(dict[str, str], value)


def _parse_entry(name: str, value: object) -> _Entry:
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise MalformedPayload(
            f"header entry {name!r} must be an object with exactly dtype, shape and data_offsets"
        )
    dtype, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(dtype, str):
        raise MalformedPayload(f"tensor {name!r}: dtype must be a string, not {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise MalformedPayload(f"tensor {name!r}: shape must be a list of sizes, not {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(n) for n in offsets)
        or offsets[0] > offsets[1]
    ):
        raise MalformedPayload(
            f"tensor {name!r}: data_offsets must be [begin, end], not {offsets!r}"
        )
    return _Entry(dtype, tuple(shape), offsets[0], offsets[1])


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_manifest(entries: Mapping[str, _Entry], manifest: Manifest, dtype: torch.dtype) -> None:
    missing, extra = sorted(set(manifest) - set(entries)), sorted(set(entries) - set(manifest))
    if missing or extra:
        raise ManifestMismatch(
            f"tensor names differ from the model: missing {missing}, extra {extra}"
        )
    for name, (shape, model_dtype) in manifest.items():
        entry = entries[name]
        if entry.shape != tuple(shape):
            raise ManifestMismatch(
                f"tensor {name!r} has shape {list(entry.shape)}, expected {list(shape)}"
            )
        expected = _DTYPE_NAMES[dtype if model_dtype.is_floating_point else model_dtype]
        if entry.dtype != expected:
            raise ManifestMismatch(f"tensor {name!r} has dtype {entry.dtype}, expected {expected}")


def _check_layout(data: bytes, entries: Mapping[str, _Entry]) -> None:
    """Tensors must tile the data section exactly: no gaps, no overlaps, no trailing bytes."""
    (length,) = struct.unpack("<Q", data[:_LENGTH_PREFIX])
    data_size = len(data) - _LENGTH_PREFIX - length
    position = 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.dtype not in _DTYPES:
            raise MalformedPayload(f"tensor {name!r} has unsupported dtype {entry.dtype!r}")
        if entry.begin != position:
            kind = "overlaps the previous tensor" if entry.begin < position else "leaves a gap"
            raise MalformedPayload(f"tensor {name!r} starts at byte {entry.begin} and {kind}")
        size = _DTYPES[entry.dtype].itemsize * math.prod(entry.shape)
        if entry.end - entry.begin != size:
            raise MalformedPayload(
                f"tensor {name!r} spans {entry.end - entry.begin} bytes, its shape needs {size}"
            )
        position = entry.end
    if position != data_size:
        raise MalformedPayload(
            f"tensors cover {position} bytes but the data section holds {data_size}: "
            "trailing bytes or a short payload"
        )


def _load(data: bytes) -> dict[str, Tensor]:
    # safetensors' loader parses its own JSON header and copies raw tensor bytes: no pickle,
    # no code. Callers have already checked the header and layout by hand before this.
    try:
        return safetensors.torch.load(data)
    except SafetensorError as exc:  # our checks should have caught it; still refuse cleanly
        raise MalformedPayload(f"safetensors refused the payload: {exc}") from None


def _check_finite(tensors: Mapping[str, Tensor]) -> None:
    bad = non_finite(tensors)
    if bad:
        raise NonFinitePayload(f"tensor {bad[0]!r} contains NaN or Inf")
