"""Carry probe: does the generator pass the previous frame's appearance through where it says "visible"?

For each scored frame i the generator runs on (S_i, S_{i-1}, I_{i-1}) with the real previous frame
and again with that frame perturbed (a colour shift, a red/blue swap). Flow and occlusion come from
the label maps only, so the perturbation reaches the output only through the image path. In the
pixels the occlusion map calls visible (OC < 0.5) the probe reports

    carry = mean |output' - output| / mean |WI'_{i-1} - WI_{i-1}|

1 means the visible content follows the previous frame exactly (what the paper's recurrence is
for); 0 means the output ignores it and is predicted from the labels alone.
"""
from __future__ import annotations

import numpy as np
import torch

PERTURBATIONS = {
    # in [-1, 1] image units; clamped so the perturbed frame is still an image
    "colour_shift": lambda x: (x + x.new_tensor([0.4, -0.2, -0.4]).view(1, 3, 1, 1)).clamp(-1, 1),
    "swap_rb": lambda x: x[:, [2, 1, 0]],
}
VISIBLE = 0.5  # occlusion below this counts as visible


def _to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class CarryProbe:
    """Accumulates the probe over sequences; `results()` gives carry per perturbation and their mean."""

    def __init__(self, generator: torch.nn.Module, device: str | torch.device = "cpu"):
        self.generator = generator
        self.device = torch.device(device)
        self.out_change = {k: 0.0 for k in PERTURBATIONS}
        self.prev_change = {k: 0.0 for k in PERTURBATIONS}
        self.visible = 0
        self.pixels = 0
        self.occlusion = 0.0

    @torch.no_grad()
    def add_sequence(self, real: np.ndarray, labels: np.ndarray) -> None:
        """real: T x H x W x 3 uint8 and labels: T x H x W ids, both at the model's resolution."""
        if len(real) < 2:
            return
        images = _to_tensor(real, self.device)
        ids = torch.from_numpy(np.asarray(labels).astype(np.int64)).to(self.device)
        names = list(PERTURBATIONS)
        for i in range(1, len(real)):
            prev = images[i - 1:i]
            batch = torch.cat([prev] + [PERTURBATIONS[k](prev) for k in names])
            n = len(batch)
            out = self.generator(ids[i:i + 1].expand(n, -1, -1), ids[i - 1:i].expand(n, -1, -1), batch)
            image, warped, occlusion = out.image.float(), out.warped.float(), out.occlusion.float()
            visible = (occlusion[0, 0] < VISIBLE)
            self.pixels += visible.numel()
            self.occlusion += float(occlusion[0].mean()) * visible.numel()
            count = int(visible.sum())
            if count == 0:
                continue
            self.visible += count
            for j, k in enumerate(names, start=1):
                self.out_change[k] += float((image[j] - image[0]).abs().mean(0)[visible].sum())
                self.prev_change[k] += float((warped[j] - warped[0]).abs().mean(0)[visible].sum())

    def results(self) -> dict[str, float]:
        """{} when no visible pixel was seen, else carry (mean over perturbations), carry_<name>,
        carry_visible (share of visible pixels) and carry_occlusion (mean OC)."""
        if self.visible == 0:
            return {}
        per = {f"carry_{k}": self.out_change[k] / max(self.prev_change[k], 1e-12) for k in PERTURBATIONS}
        return {"carry": float(np.mean(list(per.values()))), **per,
                "carry_visible": self.visible / self.pixels, "carry_occlusion": self.occlusion / self.pixels}
