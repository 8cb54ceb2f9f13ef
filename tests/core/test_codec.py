"""The payload codec: round trips, and every hostile payload of RELIABILITY.md refused."""

from __future__ import annotations

import io
import json
import math
import pickle
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import Tensor

from core.codec import (
    PRECISIONS,
    MalformedPayload,
    ManifestMismatch,
    NonFinitePayload,
    NormTooLarge,
    PayloadError,
    PayloadTooLarge,
    Precision,
    decode_named,
    decode_tensors,
    encode_named,
    encode_tensors,
    global_norm,
    non_finite,
    payload_bytes,
    quantize,
    sha256_hex,
)
from core.model import ModelConfig, build_gan, parameter_manifest

CFG = ModelConfig(image_size=32, latent_dim=8, g_features=4, d_features=4)
MANIFEST = parameter_manifest(CFG)
ROOMY = 1 << 30  # bytes: a size cap that never triggers, so later checks are reached


def gradients(seed: int = 0, scale: float = 1e-3) -> dict[str, Tensor]:
    """Gradient-like fp32 tensors matching MANIFEST."""
    gen = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(shape, generator=gen, dtype=dtype) * scale
        for name, (shape, dtype) in MANIFEST.items()
    }


def decode(data: bytes, precision: Precision = "fp32", **kwargs: object) -> dict[str, Tensor]:
    options: dict = {"max_bytes": ROOMY} | kwargs
    return decode_tensors(data, MANIFEST, precision=precision, **options)


def split(data: bytes) -> tuple[dict, bytes]:
    """(header JSON, data section) of a safetensors buffer."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def join(header: object, body: bytes) -> bytes:
    """A safetensors-shaped buffer from any JSON value (or raw bytes) as header."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def edit_header(data: bytes, change: Callable[[dict], object]) -> bytes:
    header, body = split(data)
    change(header)
    return join(header, body)


def by_offset(header: dict) -> list[str]:
    names = [n for n in header if n != "__metadata__"]
    return sorted(names, key=lambda n: header[n]["data_offsets"][0])


# ---------------------------------------------------------------- round trips


def test_fp32_round_trip_is_exact() -> None:
    grads = gradients()
    out = decode(encode_tensors(grads, "fp32"))
    assert out.keys() == grads.keys()
    for name, t in grads.items():
        assert out[name].dtype == torch.float32
        assert torch.equal(out[name], t)


@pytest.mark.parametrize(
    ("precision", "rtol", "atol"),
    [("bf16", 2**-8, 0.0), ("fp16", 2**-11, 6e-8)],  # half an ulp; fp16 subnormals need atol
)
def test_low_precision_round_trip_within_rounding(
    precision: Precision, rtol: float, atol: float
) -> None:
    grads = gradients()
    out = decode(encode_tensors(grads, precision), precision)
    for name, t in grads.items():
        assert out[name].dtype == torch.float32
        torch.testing.assert_close(out[name], t, rtol=rtol, atol=atol)
    assert not torch.equal(out["G.net.0.weight"], grads["G.net.0.weight"])  # it did round


@pytest.mark.parametrize("precision", PRECISIONS)
def test_quantize_is_bitwise_what_travels(precision: Precision) -> None:
    grads = gradients(seed=3)
    travelled = decode(encode_tensors(grads, precision), precision)
    local = quantize(grads, precision)
    for name in grads:
        assert local[name].dtype == torch.float32
        assert torch.equal(local[name], travelled[name])


def test_quantize_does_not_alias_its_input() -> None:
    grads = gradients()
    local = quantize(grads, "fp32")
    local["D.net.0.weight"].add_(1.0)
    assert not torch.equal(local["D.net.0.weight"], grads["D.net.0.weight"])


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    "cfg", [CFG, ModelConfig(image_size=64, latent_dim=100, g_features=64, d_features=64)]
)
def test_payload_bytes_is_the_exact_encoded_size(cfg: ModelConfig, precision: Precision) -> None:
    manifest = parameter_manifest(cfg)
    zeros = {name: torch.zeros(shape, dtype=dtype) for name, (shape, dtype) in manifest.items()}
    assert payload_bytes(manifest, precision) == len(encode_tensors(zeros, precision))


def test_payload_bytes_follows_safetensors_layout_for_mixed_dtypes() -> None:
    # safetensors puts the 1000-byte mask last (lowest dtype rank), not first (by name): the
    # offsets of the other tensors, and so the header's length, depend on getting that right
    manifest = {
        "a.mask": ((10, 100), torch.uint8),
        "b.count": ((3,), torch.int64),
        "c.weight": ((2, 3), torch.float32),
        "d.index": ((5,), torch.int32),
    }
    tensors = {name: torch.zeros(shape, dtype=dtype) for name, (shape, dtype) in manifest.items()}
    for precision in PRECISIONS:
        assert payload_bytes(manifest, precision) == len(encode_tensors(tensors, precision))


def test_decoded_tensors_are_writable_copies() -> None:
    data = encode_tensors(gradients(), "fp32")
    out = decode(data)
    out["G.net.0.weight"].zero_()  # would scribble on an immutable bytes object if a view
    assert torch.equal(decode(data)["G.net.0.weight"], gradients()["G.net.0.weight"])


def test_norm_below_the_bound_passes() -> None:
    grads = gradients()
    out = decode(encode_tensors(grads), max_norm=global_norm(grads) * 1.01)
    assert out.keys() == grads.keys()


# ---------------------------------------------------------------- hostile payloads


class _Armed:
    """Unpickling this creates the marker file: proof that something was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_pickle_is_refused_without_being_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    data = pickle.dumps(_Armed(marker), protocol=pickle.HIGHEST_PROTOCOL)
    assert b"touch" in data  # the payload really is armed
    with pytest.raises(MalformedPayload, match="pickle"):
        decode(data)
    assert not marker.exists()


def test_torch_save_file_is_refused_without_being_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    buffer = io.BytesIO()
    torch.save({"G.net.0.weight": _Armed(marker)}, buffer)
    with pytest.raises(MalformedPayload, match="zip"):
        decode(buffer.getvalue())
    assert not marker.exists()


def test_zip_bomb_is_refused_without_expanding() -> None:
    inner = io.BytesIO()
    with (
        zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("zeros.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(256):
            member.write(bytes(1 << 20))  # 256 MiB of zeros in total
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("inner.zip", inner.getvalue())
    bomb = outer.getvalue()
    assert len(bomb) < 4096
    with pytest.raises(MalformedPayload, match="zip"):
        decode(bomb)


@pytest.mark.parametrize("length", [0, 3, 8, 100, 5000])
def test_random_bytes_are_refused(length: int) -> None:
    data = random.Random(length).randbytes(length)
    with pytest.raises(MalformedPayload):
        decode(data)


def test_truncated_header_is_refused() -> None:
    data = encode_tensors(gradients())
    with pytest.raises(MalformedPayload, match="too short"):
        decode(data[:5])
    (length,) = struct.unpack("<Q", data[:8])
    with pytest.raises(MalformedPayload, match="past the end"):
        decode(data[: 8 + length // 2])


def test_header_length_past_the_end_is_refused() -> None:
    data = encode_tensors(gradients())
    forged = struct.pack("<Q", len(data)) + data[8:]
    with pytest.raises(MalformedPayload, match="past the end"):
        decode(forged)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"[1, 2, 3]", "JSON object, not list"),
        (b'"a string"', "JSON object, not str"),
        (b'{"x": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}', "constant NaN"),
        (b'{"a": {}, "a": {}}', "repeats a key"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid UTF-8 JSON"),
        (b'{"x": {"dtype": "F32", "shape": [' + b"9" * 5000 + b"]}}", "not valid UTF-8 JSON"),
    ],
)
def test_malformed_header_json_is_refused(header: bytes, match: str) -> None:
    with pytest.raises(MalformedPayload, match=match):
        decode(join(header, b""))


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": "F32", "shape": [1]},  # no data_offsets
        {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1},
        {"dtype": 32, "shape": [1], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]},
        {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]},
        {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]},
        {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]},
        [1, 2],
    ],
)
def test_malformed_header_entry_is_refused(entry: object) -> None:
    data = join({"x": entry}, bytes(4))
    with pytest.raises(MalformedPayload, match="'x'"):
        decode(data)


@pytest.mark.parametrize("metadata", [[], "text", {"k": 1}, {"k": {"nested": "v"}}, None])
def test_metadata_abuse_is_refused(metadata: object) -> None:
    data = edit_header(encode_tensors(gradients()), lambda h: h.update(__metadata__=metadata))
    with pytest.raises(MalformedPayload, match="__metadata__"):
        decode(data)


def test_oversized_header_is_refused() -> None:
    header = b'{"__metadata__": {"k": "' + b"x" * (2 << 20) + b'"}}'
    with pytest.raises(MalformedPayload, match="over the limit"):
        decode(join(header, b""))


def test_trailing_bytes_are_refused() -> None:
    data = encode_tensors(gradients())
    with pytest.raises(MalformedPayload, match="trailing bytes"):
        decode(data + bytes(4))


def test_short_data_section_is_refused() -> None:
    data = encode_tensors(gradients())
    with pytest.raises(MalformedPayload):
        decode(data[:-4])


def test_overlapping_offsets_are_refused() -> None:
    def overlap(header: dict) -> None:
        second = header[by_offset(header)[1]]
        second["data_offsets"] = [o - 4 for o in second["data_offsets"]]

    with pytest.raises(MalformedPayload, match="overlaps"):
        decode(edit_header(encode_tensors(gradients()), overlap))


def test_two_tensors_sharing_bytes_are_refused() -> None:
    def alias(header: dict) -> None:
        first, second = by_offset(header)[:2]
        header[second]["data_offsets"] = header[first]["data_offsets"]
        header[second]["shape"] = header[first]["shape"]

    # shapes now break the manifest first; without a manifest the layout check must catch it
    data = edit_header(encode_named({"a": torch.ones(4), "b": torch.ones(4)}, {}), alias)
    with pytest.raises(MalformedPayload, match="overlaps"):
        decode_named(data, ROOMY)


def test_gapped_offsets_are_refused() -> None:
    def gap(header: dict) -> None:
        for name in by_offset(header)[1:]:
            header[name]["data_offsets"] = [o + 4 for o in header[name]["data_offsets"]]

    header, body = split(encode_tensors(gradients()))
    gap(header)
    with pytest.raises(MalformedPayload, match="gap"):
        decode(join(header, body + bytes(4)))


def test_span_not_matching_shape_is_refused() -> None:
    def stretch(header: dict) -> None:
        names = by_offset(header)
        header[names[-1]]["data_offsets"][0] -= 4  # last tensor claims 4 more bytes ...
        header[names[-2]]["data_offsets"][1] -= 4  # ... that its neighbour gives up

    with pytest.raises(MalformedPayload, match="spans"):
        decode(edit_header(encode_tensors(gradients()), stretch))


def test_wrong_tensor_name_is_refused() -> None:
    grads = gradients()
    grads["G.net.0.weights"] = grads.pop("G.net.0.weight")
    with pytest.raises(ManifestMismatch, match=r"missing \['G.net.0.weight'\]"):
        decode(encode_tensors(grads))


def test_missing_tensor_is_refused() -> None:
    grads = gradients()
    del grads["D.net.3.bias"]
    with pytest.raises(ManifestMismatch, match="missing"):
        decode(encode_tensors(grads))


def test_extra_tensor_is_refused() -> None:
    grads = gradients() | {"G.net.0.running_mean": torch.zeros(4)}
    with pytest.raises(ManifestMismatch, match=r"extra \['G.net.0.running_mean'\]"):
        decode(encode_tensors(grads))


def test_wrong_shape_is_refused() -> None:
    grads = gradients()
    grads["G.net.0.weight"] = grads["G.net.0.weight"].flatten()
    with pytest.raises(ManifestMismatch, match="shape"):
        decode(encode_tensors(grads))


@pytest.mark.parametrize(
    ("expected", "sent"),
    [
        ("fp32", torch.float64),
        ("fp32", torch.int64),
        ("fp32", torch.float16),
        ("fp32", torch.bfloat16),
        ("fp16", torch.bfloat16),
        ("bf16", torch.float32),
    ],
)
def test_wrong_dtype_is_refused(expected: Precision, sent: torch.dtype) -> None:
    tensors = {name: t.to(sent) for name, t in gradients(scale=100.0).items()}
    with pytest.raises(ManifestMismatch, match="dtype"):
        decode(safetensors.torch.save(tensors), expected)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(precision: Precision, bad: float) -> None:
    grads = gradients()
    grads["D.net.3.weight"].view(-1)[2] = bad
    with pytest.raises(NonFinitePayload, match=r"D\.net\.3\.weight"):
        decode(encode_tensors(grads, precision), precision)


def test_norm_times_a_thousand_is_refused() -> None:
    grads = gradients()
    bound = 10 * global_norm(grads)
    huge = {name: t * 1000 for name, t in grads.items()}
    with pytest.raises(NormTooLarge, match="exceeds the bound"):
        decode(encode_tensors(huge), max_norm=bound)


def test_oversized_payload_is_refused_before_parsing() -> None:
    data = encode_tensors(gradients())
    assert decode(data, max_bytes=len(data))
    with pytest.raises(PayloadTooLarge, match="over the cap"):
        decode(data, max_bytes=len(data) - 1)
    with pytest.raises(PayloadTooLarge):
        decode(b"\x80\x04garbage that is not even a header", max_bytes=8)


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        decode(encode_tensors(gradients()), "fp8")  # type: ignore[arg-type]


# ---------------------------------------------------------------- property


def _mutations(data: bytes, rng: random.Random) -> bytes:
    """One random corruption of a valid payload."""
    (length,) = struct.unpack("<Q", data[:8])
    kind = rng.randrange(6)
    buf = bytearray(data)
    if kind == 0:  # flip a byte in the prefix or header
        buf[rng.randrange(8 + length)] ^= 1 << rng.randrange(8)
    elif kind == 1:  # flip a byte in the data section (may make NaN/Inf or just a new value)
        buf[rng.randrange(8 + length, len(buf))] ^= 1 << rng.randrange(8)
    elif kind == 2:  # truncate anywhere
        del buf[rng.randrange(len(buf)) :]
    elif kind == 3:  # append junk
        buf += rng.randbytes(rng.randrange(1, 64))
    elif kind == 4:  # overwrite a header digit with another digit
        digits = [i for i in range(8, 8 + length) if chr(buf[i]).isdigit()]
        buf[rng.choice(digits)] = ord(rng.choice("0123456789"))
    else:  # splice a random range of bytes out
        start = rng.randrange(len(buf))
        del buf[start : start + rng.randrange(1, 16)]
    return bytes(buf)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_whatever_decodes_matches_the_manifest_exactly(precision: Precision) -> None:
    data = encode_tensors(gradients(), precision)
    rng = random.Random(precision)
    accepted = 0
    for _ in range(300):
        try:
            out = decode(_mutations(data, rng), precision)
        except PayloadError:
            continue
        accepted += 1
        assert out.keys() == MANIFEST.keys()
        for name, (shape, _) in MANIFEST.items():
            assert tuple(out[name].shape) == shape
            assert out[name].dtype == torch.float32
            assert bool(torch.isfinite(out[name]).all())
    assert accepted > 0  # data-section flips that stay finite must still decode


# ---------------------------------------------------------------- named files and helpers


def test_named_round_trip_keeps_dtypes_and_metadata() -> None:
    tensors = {"G.net.0.weight": torch.randn(3, 4), "step": torch.tensor(7, dtype=torch.int64)}
    metadata = {"model_config": CFG.to_json(), "version": "12"}
    data = encode_named(tensors, metadata)
    out, meta = decode_named(data, max_bytes=len(data))
    assert meta == metadata
    assert ModelConfig.from_json(meta["model_config"]) == CFG
    assert out.keys() == tensors.keys()
    for name, t in tensors.items():
        assert out[name].dtype == t.dtype
        assert torch.equal(out[name], t)
    out["G.net.0.weight"].zero_()  # writable copy
    views, meta = decode_named(data, max_bytes=len(data), writable=False)  # to copy from only
    assert meta == metadata and views.keys() == tensors.keys()
    assert all(torch.equal(views[name], t) for name, t in tensors.items())


def test_named_round_trip_of_a_full_state_dict() -> None:
    # BatchNorm's num_batches_tracked is a 0-d int64 tensor: shape [] must survive the checks
    state = build_gan(CFG, seed=1).state_dict()
    data = encode_named(state, {"model_config": CFG.to_json()})
    out, _ = decode_named(data, max_bytes=len(data))
    assert out.keys() == state.keys()
    for name, t in state.items():
        assert out[name].dtype == t.dtype and out[name].shape == t.shape
        assert torch.equal(out[name], t)


def test_named_decoding_applies_the_same_checks(tmp_path: Path) -> None:
    data = encode_named({"w": torch.ones(3)}, {"k": "v"})
    with pytest.raises(PayloadTooLarge):
        decode_named(data, max_bytes=len(data) - 1)
    with pytest.raises(MalformedPayload, match="trailing"):
        decode_named(data + b"\0", ROOMY)
    marker = tmp_path / "executed"
    with pytest.raises(MalformedPayload, match="pickle"):
        decode_named(pickle.dumps(_Armed(marker)), ROOMY)
    assert not marker.exists()
    with pytest.raises(MalformedPayload, match="unsupported dtype"):
        decode_named(edit_header(data, lambda h: h["w"].update(dtype="F8_E4M3")), ROOMY)
    with pytest.raises(MalformedPayload, match="__metadata__"):
        decode_named(edit_header(data, lambda h: h.update(__metadata__={"k": 5})), ROOMY)


def test_named_encoding_refuses_non_string_metadata() -> None:
    with pytest.raises(ValueError, match="strings"):
        encode_named({"w": torch.ones(1)}, {"version": 3})  # type: ignore[dict-item]


def test_global_norm_accumulates_in_fp64() -> None:
    assert global_norm({"a": torch.tensor([3.0]), "b": torch.tensor([[4.0]])}) == 5.0
    # squares of 1e20 overflow fp32 (max ≈ 3.4e38) but not fp64
    assert global_norm({"big": torch.full((4,), 1e20)}) == pytest.approx(2e20)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_non_finite_names_exactly_the_tensors_with_nan_or_inf(dtype: torch.dtype) -> None:
    largest = torch.finfo(dtype).max
    tensors = {
        "nan": torch.tensor([1.0, float("nan"), 2.0], dtype=dtype),
        "huge": torch.full((1000,), largest, dtype=dtype),  # finite, though its squares are not
        "inf": torch.tensor([float("inf")], dtype=dtype).expand(5),
        "tiny": torch.full((3,), torch.finfo(dtype).tiny, dtype=dtype),
        "minus_inf": torch.tensor([0.0, -float("inf")], dtype=dtype),
        "zero": torch.zeros(0, dtype=dtype),
        "counts": torch.tensor([1, 2], dtype=torch.int64),
    }
    assert non_finite(tensors) == ["nan", "inf", "minus_inf"]
    assert non_finite({"huge": tensors["huge"], "tiny": tensors["tiny"]}) == []


def test_sha256_hex_is_the_standard_digest() -> None:
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex(b"abc") == expected
