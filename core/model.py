"""DCGAN generator and discriminator, their config, and the named-tensor view of their weights."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

SUPPORTED_IMAGE_SIZES = (32, 64)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild both networks; stored beside every set of weights."""

    image_size: int = 32  # pixels per side of the square RGB images: 32 or 64
    latent_dim: int = 64  # length of the noise vector z fed to the generator
    g_features: int = 32  # generator feature maps in its last hidden layer (DCGAN's ngf)
    d_features: int = 32  # discriminator feature maps in its first layer (DCGAN's ndf)
    channels: int = 3  # image channels (RGB)

    def __post_init__(self) -> None:
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ValueError(
                f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, not {self.image_size!r}"
            )
        for name in ("latent_dim", "g_features", "d_features", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a model config must be a JSON object")
        return cls.from_dict(data)

    @property
    def upsamplings(self) -> int:
        """Stride-2 layers between 4×4 and the output size: 3 for 32×32, 4 for 64×64."""
        return {32: 3, 64: 4}[self.image_size]


class Generator(nn.Module):
    """z (B, latent_dim, 1, 1) → image (B, channels, S, S) in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        width = cfg.g_features * 2 ** (cfg.upsamplings - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.latent_dim, width, 4, 1, 0, bias=False),  # (B, width, 4, 4)
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(cfg.upsamplings - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),  # doubles H and W
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, cfg.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """image (B, channels, S, S) → logit (B,); no sigmoid: losses use BCE with logits."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        width = cfg.d_features
        layers: list[nn.Module] = [
            nn.Conv2d(cfg.channels, width, 4, 2, 1, bias=False),  # halves H and W
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(cfg.upsamplings - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]  # (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


class GAN(nn.Module):
    """Both networks under one module, so their tensors are named `G.…` and `D.…`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.G = Generator(cfg)
        self.D = Discriminator(cfg)


def dcgan_init(module: nn.Module, generator: torch.Generator) -> None:
    """DCGAN initialisation (Radford et al.): conv weights N(0, 0.02), BatchNorm N(1, 0.02), 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=generator)
                m.bias.zero_()


def build_gan(cfg: ModelConfig, seed: int) -> GAN:
    """A freshly initialised GAN; the same (cfg, seed) always gives the same weights."""
    gan = GAN(cfg)
    dcgan_init(gan, torch.Generator().manual_seed(seed))
    return gan


Manifest = dict[str, tuple[tuple[int, ...], torch.dtype]]


def parameter_manifest(cfg: ModelConfig) -> Manifest:
    """Exact names, shapes and dtypes of the trainable tensors: what weights and gradients hold."""
    gan = GAN(cfg)
    return {name: (tuple(p.shape), p.dtype) for name, p in gan.named_parameters()}


def parameters_of(gan: GAN) -> dict[str, Tensor]:
    """Detached copies of the trainable tensors, named `G.…` / `D.…`."""
    return {name: p.detach().clone() for name, p in gan.named_parameters()}


def load_parameters(gan: GAN, params: Mapping[str, Tensor]) -> None:
    """Copy named trainable tensors into `gan`; names and shapes must match exactly."""
    own = dict(gan.named_parameters())
    if set(own) != set(params):
        missing, extra = sorted(set(own) - set(params)), sorted(set(params) - set(own))
        raise ValueError(
            f"parameter names do not match the model: missing {missing}, extra {extra}"
        )
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(params[name])


def gan_from_parameters(cfg: ModelConfig, params: Mapping[str, Tensor]) -> GAN:
    gan = GAN(cfg)
    load_parameters(gan, params)
    return gan
