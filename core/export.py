"""A trained model as one safetensors file: weights, calibrated BatchNorm statistics and config.

`save_model` / `load_model` are a pair; the file needs no database and is never unpickled.
"""

from __future__ import annotations

from pathlib import Path

from core.codec import decode_named, encode_named
from core.model import GAN, ModelConfig

MAX_MODEL_BYTES = 4 * 1024**3
FORMAT = "ganfriends-model/1"


def save_model(gan: GAN, path: Path, *, version: int) -> None:
    """Write every tensor of `gan` (parameters and BatchNorm buffers) with its config."""
    metadata = {"format": FORMAT, "model_config": gan.config.to_json(), "version": str(version)}
    data = encode_named(gan.state_dict(), metadata)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a half-written file would only take space (a full disk)
        raise


def load_model(path: Path) -> tuple[GAN, int]:
    """The GAN in eval mode and the version it was exported from."""
    tensors, metadata = decode_named(path.read_bytes(), MAX_MODEL_BYTES)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ganfriends model file")
    gan = GAN(ModelConfig.from_json(metadata["model_config"]))
    gan.load_state_dict(tensors, strict=True)
    gan.eval()
    return gan, int(metadata["version"])
