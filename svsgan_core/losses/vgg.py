"""The project's own VGG19 and the perceptual loss L_VGG (appendix A, equation (4)).

The layer list mirrors torchvision's `vgg19().features`, so its weight file (vgg19-dcbb9e9d.pth,
keys `features.N.weight/bias`) loads as is, without torchvision. Only layers up to relu5_1 are built.
L_VGG = sum_l beta_l mean|phi_l(x_hat) - phi_l(x)| over relu1_1..relu5_1 with beta = 1/32, 1/16,
1/8, 1/4, 1 (pix2pixHD / SPADE). Nothing is downloaded: the file comes from a path the user names or
from torch's hub cache, $TORCH_HOME/hub/checkpoints.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import MissingWeightsError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
# torchvision's configuration "E"; "M" is a 2x2 max-pool
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
RELU_INDICES = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in `features`
LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def torch_hub_checkpoints() -> Path:
    """$TORCH_HOME/hub/checkpoints, TORCH_HOME defaulting to $XDG_CACHE_HOME/torch or ~/.cache/torch."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache")), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def find_vgg19_weights(path: str | os.PathLike | None = None) -> Path:
    """The VGG19 weight file: `path` if given, else the hub cache; a MissingWeightsError says where to put it."""
    if path:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        raise MissingWeightsError(
            f"VGG19 weight file not found: {p}. Put torchvision's {VGG19_FILE} (ImageNet VGG19 state dict) "
            f"there, point loss.vgg_weights at it, or set loss.vgg to 0 to train without the perceptual loss")
    p = torch_hub_checkpoints() / VGG19_FILE
    if p.is_file():
        return p
    raise MissingWeightsError(
        f"VGG19 weights for the perceptual loss were not found at {p}. Copy torchvision's {VGG19_FILE} "
        f"there (or set TORCH_HOME), or name the file with loss.vgg_weights=PATH, or set loss.vgg=0 "
        f"to train without the perceptual loss. Nothing is downloaded at run time")


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision-format state dict from .pth (torch.load, weights_only) or .safetensors."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign files surface as one clear error
        raise MissingWeightsError(f"{path} is not a readable VGG19 weight file ({exc})") from None
    if not isinstance(state, dict):
        raise MissingWeightsError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


class VGG19(nn.Module):
    """torchvision-compatible `features` up to relu5_1, returning the five relu_1 activations."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(prev, v, 3, padding=1), nn.ReLU(inplace=True)]
                prev = v
        self.features = nn.Sequential(*layers[: RELU_INDICES[-1] + 1])
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None) -> "VGG19":
        file = find_vgg19_weights(path)
        state = load_state(file)
        net = cls()
        own = net.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise MissingWeightsError(f"{file} is not a torchvision VGG19 state dict: missing {', '.join(missing[:3])}")
        wrong = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
        if wrong:
            raise MissingWeightsError(f"{file}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, "
                                      f"VGG19 needs {tuple(own[wrong[0]].shape)}")
        net.load_state_dict({k: state[k] for k in own})
        return net

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image Bx3xHxW in [-1, 1] -> [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1]."""
        x = ((image + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in RELU_INDICES:
                out.append(x)
        return out


class VGGLoss(nn.Module):
    """Equation (4). `backbone` maps an image to a list of feature maps (VGG19 by default)."""

    def __init__(self, backbone: nn.Module, weights: tuple[float, ...] = LAYER_WEIGHTS):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.weights = tuple(weights)

    def train(self, mode: bool = True) -> "VGGLoss":
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.autocast(fake.device.type, enabled=False):
            ff = self.backbone(fake.float())
            with torch.no_grad():
                rf = self.backbone(real.float())
            return sum(w * (f - r).abs().mean() for w, f, r in zip(self.weights, ff, rf))
