"""The SVS-GAN generator (Section 3.1, Figure 2): flow + occlusion, then the triple pyramid.

    S_{i-1}, S_i --FlowOcclusionNet--> OF, OC
    I_{i-1} --warp(OF)--> WI_{i-1}
    pyramid 1  ImageEncoder(WI_{i-1})       -> skip features, gated by OcclusionFusion(OC)
    pyramid 2  SemanticEncoder(S_i)         -> per-level features + bottleneck on every level (DP-GAN)
    pyramid 3  SPADE ResNet decoder          -> I_i

Level l works at (H / 2**l, W / 2**l), level 0 finest. Both encoders see their input at every level
(avg-pooled) and the finer level's features through a strided conv; that uniform shape is what lets
`grow()` prepend a finer level while the trained levels keep computing exactly what they did.
First-frame mode (no previous frame) is the same network with WI = 0 and OC = 1: every image feature
is gated off, so the output depends on S_i alone and no external image-synthesis model is needed.

How the occlusion map balances generated and carried content (Section 3.1; the ablation that chose
this is in docs/training.md):
- the gated skips join each SPADE block *after* its instance norm (`ModelConfig.normalise_skips`
  False): normalising them per channel removed exactly what is to be carried, the warped frame's
  absolute colour, and the decoder could only re-add class-dependent colour from S_i;
- the U-Net's outermost skip is WI_{i-1} itself, and the output is OC * generated + (1 - OC) * WI_{i-1}
  (`ModelConfig.occlusion_composite`): where OC says "visible" the warped appearance is kept as it is.

Instance edges (`ModelConfig.instance_edges`, issue 24): a label map cannot say where one of two touching
cars ends, so with the knob on a binary boundary map E_i (pix2pixHD; `data.instances.boundary_map`: every
class edge plus every edge between instances) joins the one-hot wherever the labels condition G: the
flow net sees (S_{i-1}, E_{i-1}, S_i, E_i), the semantic encoder (S_i, E_i), every SPADE block E_i pooled
to its level beside the occlusion channel (the encoder features blur a one-pixel line by the coarse
levels; the direct channel keeps it at every level), and the class colour (S_i, E_i). Callers without
instance ids leave `edges` out and get the semantic edges of the labels, so every caller still works;
with the knob off no layer changes and edges passed in are ignored.

Class palette (`ModelConfig.class_palette`, with `class_colour`; not in the paper): the colour a class starts
from before the decoder's residual is its mean colour in a source frame wherever that frame shows the class,
the learnt class colour otherwise (and always in first-frame mode). Training takes the source to be I_{i-1};
a stream (`step`, the synthesizer, the exported graph) anchors it to the sequence's first frame, the real
reference or the first generated frame, given as `anchor_image` / `anchor_labels`. The scene's own colours
(this street's facade, not the training set's average one) then reach every later frame with no flow to
drift or blur, and no loop through the model's own outputs to drift either: fed back from I_{i-1} over 30
frames, colours ran off to black and white holes (docs/training.md, "The class palette").
With `ModelConfig.palette_instances` the palette also knows objects: every object of the source frame
(a class there drawn as several instance ids, `palette_slots`) starts at its own mean
colour wherever the same id is in S_i, so two touching cars keep the reference's two colours and the
seam between them (issue 24); the slots are two more inputs, computed outside the graph from the ids.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..data.instances import boundary_map, instance_edges
from .config import ModelConfig
from .flow import FlowOcclusionNet, warp


def valid_ids(labels: torch.Tensor, num_classes: int, fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of ids in [0, N), the ids with every other one replaced by `fill`): the one ignore rule of
    every per-pixel use of a label map (one-hot input, class counts, loss targets, LabelMix)."""
    valid = (labels >= 0) & (labels < num_classes)
    return valid, torch.where(valid, labels, torch.full_like(labels, fill))


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """BxHxW integer ids -> BxNxHxW float; ids outside [0, N) (the ignore label) become all-zero."""
    valid, safe = valid_ids(labels, num_classes)
    out = F.one_hot(safe.long(), num_classes).permute(0, 3, 1, 2)
    return (out * valid.unsqueeze(1)).float()


def _with_edges(seg: torch.Tensor, edges: torch.Tensor | None) -> torch.Tensor:
    """A label condition: the one-hot, and the boundary channel beside it when the model has one."""
    return seg if edges is None else torch.cat((seg, edges), 1)


PALETTE_MIN_PIXELS = 16  # fewer pixels of a class than this in I_{i-1} (or the window): its mean is noise
PALETTE_WINDOW_CELLS = 5  # the local palette's window, in cells of its grid


def class_palette(image: torch.Tensor, prev_seg: torch.Tensor, seg: torch.Tensor, cells: int = 0,
                  min_pixels: int = PALETTE_MIN_PIXELS) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour each pixel of S_i (one-hot `seg`, BxNxHxW) starts from: its class's mean colour in
    `image` (I_{i-1}, Bx3xHxW) under `prev_seg`, in fp32. With `cells` > 0 the mean is local: over a window
    of PALETTE_WINDOW_CELLS cells of a grid `cells` across the width (a street's two facades keep their
    own colours), the whole frame's mean where the window holds too little of the class.
    Returns (colour Bx3xHxW, known Bx1xHxW: 0 where I_{i-1} cannot say, the learnt colour's pixels)."""
    prev_seg, seg, image = prev_seg.float(), seg.float(), image.float()
    b, n, h, w = seg.shape
    counts = prev_seg.sum((2, 3))
    means = torch.bmm(prev_seg.flatten(2), image.flatten(2).transpose(1, 2)) / counts.clamp_min(1.0).unsqueeze(-1)
    known = (counts >= min_pixels).float()
    colour = torch.einsum("bnc,bnhw->bchw", means * known.unsqueeze(-1), seg)
    known_px = torch.einsum("bn,bnhw->bhw", known, seg).unsqueeze(1)
    if cells <= 0:
        return colour, known_px
    cell = max(1, w // cells)
    x = torch.cat(((prev_seg.unsqueeze(2) * image.unsqueeze(1)).flatten(1, 2), prev_seg), 1)
    x = F.avg_pool2d(x, cell, cell, ceil_mode=True)
    x = F.avg_pool2d(x, PALETTE_WINDOW_CELLS, 1, PALETTE_WINDOW_CELLS // 2)
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    sums, share = x[:, : 3 * n].view(b, n, 3, h, w), x[:, 3 * n:]
    own = (share * seg).sum(1, keepdim=True)  # the window's share of this pixel's class
    local = (sums * seg.unsqueeze(2)).sum(1) / own.clamp_min(1e-6)
    # a ramp, not a threshold: a pixel count at the threshold must not flip between runtimes' roundings
    trusted = (own * (float(PALETTE_WINDOW_CELLS * cell) ** 2 / min_pixels)).clamp(0.0, 1.0)
    return trusted * local + (1.0 - trusted) * colour, torch.maximum(trusted, known_px)


def _segment_keys(labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """One int64 per pixel for its (label, instance id) pair: a segment."""
    return (labels.long() << 32) | (ids.long() & 0xFFFFFFFF)


class PaletteObjects(NamedTuple):
    """The objects of one palette source frame that get their own colour (`palette_slots`): its segments'
    sorted keys, each key's slot (0: none) and the frame's own slot map. A stream keeps its first frame's,
    so each later frame costs one lookup (`find`), no sort and no device-to-host sync."""

    keys: torch.Tensor
    slot_of_key: torch.Tensor
    source_slots: torch.Tensor

    @classmethod
    def of(cls, labels: torch.Tensor, ids: torch.Tensor, slots: int) -> "PaletteObjects":
        """labels, ids: one frame (any shape, the same); `slots`: how many objects at most."""
        key = _segment_keys(labels, ids)
        keys, where, size = torch.unique(key.flatten(), return_inverse=True, return_counts=True)
        classes, per_class = torch.unique(keys >> 32, return_counts=True)
        eligible = torch.isin(keys >> 32, classes[per_class > 1]) & (keys >= 0)
        order = torch.argsort(torch.where(eligible, size, torch.zeros_like(size)), descending=True, stable=True)
        chosen = order[: slots][eligible[order[: slots]]]
        slot_of_key = torch.zeros(len(keys), dtype=torch.int64, device=keys.device)
        slot_of_key[chosen] = torch.arange(1, len(chosen) + 1, device=keys.device)
        return cls(keys, slot_of_key, slot_of_key[where].view(key.shape))

    def find(self, labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The slot map of another frame: each pixel's segment's slot in the source frame, 0 if it has none."""
        key = _segment_keys(labels, ids).flatten()
        at = torch.searchsorted(self.keys, key).clamp_max(len(self.keys) - 1)
        found = self.keys[at] == key
        return torch.where(found, self.slot_of_key[at], torch.zeros_like(at)).view(labels.shape)


def palette_slots(source_labels: torch.Tensor, source_ids: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor,
                  slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which objects of a palette's source frame give their own colour, and where they are now.

    Every (label, instance id) pair is a segment. In the source frame (I_{i-1}, or a stream's first frame)
    the segments of classes drawn as more than one segment there, largest first, get slots 1..`slots`;
    returns (the source frame's slot map, the current frame's) as BxHxW int64 torch tensors, 0 where a
    pixel has no slot: a class of one segment (stuff, or a frame without instance ids, whose ids are its
    labels) is what the class palette already paints, and an object the source frame does not show has no
    colour there. Ids must be persistent over time (CARLA's, make-synthetic's) for a slot to follow its
    object. Inputs: BxHxW label maps and instance ids (torch, any integer type).
    """
    if slots <= 0:
        zeros = torch.zeros(labels.shape, dtype=torch.int64, device=labels.device)
        return torch.zeros_like(zeros), zeros
    pairs = []
    for i in range(labels.shape[0]):
        objects = PaletteObjects.of(source_labels[i], source_ids[i], slots)
        pairs.append((objects.source_slots, objects.find(labels[i], ids[i])))
    return tuple(torch.stack(x) for x in zip(*pairs))


def object_palette(palette: tuple[torch.Tensor, torch.Tensor], image: torch.Tensor, source_slots: torch.Tensor,
                   slots: torch.Tensor, seg: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`class_palette`'s (colour, known) with every object that has a slot (`palette_slots`:
    BxHxW ids 0..count, 0 = none) in both its source frame and S_i painted its own mean colour there
    instead of its class's: two touching cars of one class keep their two colours (issue 24)."""
    ids = torch.arange(1, count + 1, device=slots.device).view(1, -1, 1, 1)
    source_onehot = (source_slots.unsqueeze(1) == ids).to(image.dtype)
    onehot = (slots.unsqueeze(1) == ids).to(image.dtype) * seg.sum(1, keepdim=True).clamp_max(1.0)
    own, own_known = class_palette(image, source_onehot, onehot)
    colour, known = palette
    return own_known * own + (1.0 - own_known) * colour, torch.maximum(known, own_known)


def binomial_blur(x: torch.Tensor) -> torch.Tensor:
    """5x5 binomial low-pass ([1 4 6 4 1] / 16 each way, sigma 1 px), per channel, replicate borders: what
    stays of an image after the detail that a sub-pixel warp blurs is taken out. Four 2x2 box filters in a
    row are exactly that kernel (and export to ONNX as plain AveragePools)."""
    x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    for _ in range(4):
        x = F.avg_pool2d(x, 2, stride=1)
    return x


def _pool_to(x: torch.Tensor, level: int) -> torch.Tensor:
    return F.avg_pool2d(x, 2 ** level) if level > 0 else x


class EncoderLevel(nn.Module):
    """feat_l = act(refine(act(inject(input at level l) + down(feat_{l-1}))))."""

    def __init__(self, in_channels: int, channels: int, finer_channels: int | None, zero_down: bool = False):
        super().__init__()
        self.inject = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = None
        if finer_channels is not None:
            self.down = nn.Conv2d(finer_channels, channels, 3, stride=2, padding=1)
            if zero_down:
                nn.init.zeros_(self.down.weight)
                nn.init.zeros_(self.down.bias)
        self.refine = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor, finer: torch.Tensor | None) -> torch.Tensor:
        h = self.inject(x)
        if self.down is not None and finer is not None:
            h = h + self.down(finer)
        return self.act(self.refine(self.act(h)))


class Pyramid(nn.Module):
    """An encoder pyramid over one input (warped image or semantic one-hot), finest level first."""

    def __init__(self, in_channels: int, channels: list[int]):
        super().__init__()
        self.in_channels = in_channels
        self.levels = nn.ModuleList(
            EncoderLevel(in_channels, c, channels[l - 1] if l > 0 else None) for l, c in enumerate(channels)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, prev = [], None
        for l, level in enumerate(self.levels):
            prev = level(_pool_to(x, l), prev)
            feats.append(prev)
        return feats

    def grow(self, channels: int) -> None:
        old_first = self.levels[0]
        old_first.down = nn.Conv2d(channels, old_first.refine.out_channels, 3, stride=2, padding=1).to(
            old_first.refine.weight.device)
        nn.init.zeros_(old_first.down.weight)
        nn.init.zeros_(old_first.down.bias)
        self.levels.insert(0, EncoderLevel(self.in_channels, channels, None).to(old_first.refine.weight.device))


class ImageEncoder(Pyramid):
    """Pyramid 1: features of the warped previous frame WI_{i-1}, the U-Net skips of the decoder.

    Returns one feature map per level and, last, WI_{i-1} itself: the U-Net's outermost skip.
    """

    def __init__(self, channels: list[int]):
        super().__init__(3, channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return super().forward(x) + [x]


class SemanticEncoder(Pyramid):
    """Pyramid 2: features of S_i for SPADE, each level joined by the upsampled bottleneck (DP-GAN)."""

    def __init__(self, num_classes: int, channels: list[int], bottleneck_channels: int):
        super().__init__(num_classes, channels)
        self.bottleneck = nn.Sequential(nn.Conv2d(channels[-1], bottleneck_channels, 1), nn.LeakyReLU(0.2, True))

    def conditions(self, onehot: torch.Tensor) -> list[torch.Tensor]:
        feats = self.forward(onehot)
        glob = self.bottleneck(feats[-1])
        # integer scale factors, not target sizes: the same values, and the ONNX graph keeps static shapes
        top = len(feats) - 1
        return [torch.cat((f, glob if l == top else
                           F.interpolate(glob, scale_factor=2 ** (top - l), mode="bilinear", align_corners=False)), 1)
                for l, f in enumerate(feats)]


class OcclusionFusion(nn.Module):
    """Gates the image encoder's skip features by the occlusion map: keep (1-OC), regenerate OC.

    Occluded pixels (OC=1) pass nothing from the previous frame, so the decoder must synthesize them
    from the semantic map; visible pixels (OC=0) carry the warped appearance through.
    """

    def forward(self, feats: list[torch.Tensor], occlusion: torch.Tensor) -> list[torch.Tensor]:
        """feats: the ImageEncoder's levels (finest first) and, last, the full-resolution WI_{i-1}."""
        levels = list(range(len(feats) - 1)) + [0]
        return [f * (1.0 - _pool_to(occlusion, l)) for l, f in zip(levels, feats)]


class SPADE(nn.Module):
    """Parameter-free instance norm, then per-pixel scale and shift predicted from the condition.

    `raw` channels (the gated image skip) are concatenated after the norm: modulated like the rest,
    but not normalised, so the warped frame's absolute colour reaches the convolution.
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int):
        super().__init__()
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, raw: torch.Tensor | None = None) -> torch.Tensor:
        h = self.shared(cond)
        n = F.instance_norm(x, eps=1e-5)
        if raw is not None:
            n = torch.cat((n, raw), 1)
        return n * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    """SPADE ResNet block over the decoder features x and the gated image skip of its level.

    normalise_skip=False: the skip joins after the instance norm (absolute colour survives);
    True: x and skip are concatenated first and normalised together. Same parameters either way.
    """

    def __init__(self, channels: int, skip_channels: int, out_channels: int, cond_channels: int, hidden: int,
                 normalise_skip: bool = False):
        super().__init__()
        self.normalise_skip = normalise_skip
        in_channels = channels + skip_channels
        mid = min(in_channels, out_channels)
        self.norm0 = SPADE(in_channels, cond_channels, hidden)
        self.conv0 = spectral_norm(nn.Conv2d(in_channels, mid, 3, padding=1))
        self.norm1 = SPADE(mid, cond_channels, hidden)
        self.conv1 = spectral_norm(nn.Conv2d(mid, out_channels, 3, padding=1))
        self.shortcut = None
        if in_channels != out_channels:
            self.norm_s = SPADE(in_channels, cond_channels, hidden)
            self.shortcut = spectral_norm(nn.Conv2d(in_channels, out_channels, 1, bias=False))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        raw = skip
        if self.normalise_skip:
            x, raw = torch.cat((x, skip), 1), None
        if self.shortcut is None:
            res = torch.cat((x, skip), 1) if raw is not None else x
        else:
            res = self.shortcut(self.norm_s(x, cond, raw))
        h = self.conv0(self.act(self.norm0(x, cond, raw)))
        h = self.conv1(self.act(self.norm1(h, cond)))
        return res + h


class GeneratorOutput(NamedTuple):
    image: torch.Tensor  # Bx3xHxW in [-1, 1]
    flow: torch.Tensor | None  # Bx2xHxW, pixels, backward (None in first-frame mode)
    occlusion: torch.Tensor  # Bx1xHxW in [0, 1], fp32
    warped: torch.Tensor | None  # WI_{i-1}
    occlusion_logits: torch.Tensor | None = None  # Bx1xHxW fp32, what the occlusion loss trains (None in first-frame mode)


class SVSGenerator(nn.Module):
    """G(I_{i-1}, S_{i-1}, S_i) -> I_i; with no previous frame, G(S_i) in first-frame mode."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        n = cfg.num_classes
        e = self.edge_channels = int(cfg.instance_edges)  # the boundary map's channel beside each one-hot
        self.flow_net = FlowOcclusionNet(n + e, cfg.flow_channels, cfg.flow_res_blocks, cfg.flow_downsample)
        self.image_encoder = ImageEncoder(cfg.img_channels)
        self.semantic_encoder = SemanticEncoder(n + e, cfg.sem_channels, cfg.bottleneck_channels)
        self.fusion = OcclusionFusion()
        L = cfg.levels
        self.decoder_in = nn.Conv2d(cfg.sem_channels[-1] + cfg.img_channels[-1], cfg.dec_channels[-1], 3, padding=1)
        self.decoder = nn.ModuleList(self._block(l) for l in range(L))
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(cfg.dec_channels[0], 3, 3, padding=1), nn.Tanh())
        # class_colour: the label map's own colour at full resolution, added to to_rgb's input of the tanh:
        # every class boundary of S_i is an edge of the output from the first step (no blur to unlearn)
        self.class_colour = nn.Conv2d(n + e, 3, 1, bias=False) if cfg.class_colour else None
        if self.class_colour is not None:
            nn.init.zeros_(self.class_colour.weight)
            # and the decoder's colour starts at zero, so that step 0 paints exactly the class colours (the
            # trainer starts them at the data's class means): training adds detail to a crisp painting
            # instead of first unlearning a random blur over it
            nn.init.zeros_(self.to_rgb[1].weight)
            nn.init.zeros_(self.to_rgb[1].bias)
        # carry_refine: a residual over the composite from the finest decoder features, zero at the start
        # so the carry is exact until the decoder learns what to correct (blur, drift) where OC says visible
        self.refine = None
        if cfg.occlusion_composite and cfg.carry_refine:
            self.refine = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(cfg.dec_channels[0], 3, 3, padding=1))
            nn.init.zeros_(self.refine[1].weight)
            nn.init.zeros_(self.refine[1].bias)
        # fade-in after grow() (ProGAN): 0 = the grown model outputs the previous stage upsampled, 1 = the
        # new finest block alone; the trainer advances it (schedule.fade_steps). A plain attribute, not a
        # buffer: checkpoints hold finished models, and a resumed run recomputes it from its step.
        self.fade = 1.0

    def _block(self, l: int) -> SPADEResBlock:
        c = self.cfg
        cond = c.sem_channels[l] + c.bottleneck_channels + 1 + self.edge_channels
        hidden = min(c.spade_hidden, max(32, c.dec_channels[l]))
        return SPADEResBlock(c.dec_channels[l], c.img_channels[l], c.dec_channels[max(l - 1, 0)], cond, hidden,
                             c.normalise_skips)

    def forward(self, labels: torch.Tensor, prev_labels: torch.Tensor | None = None,
                prev_image: torch.Tensor | None = None, edges: torch.Tensor | None = None,
                prev_edges: torch.Tensor | None = None, anchor_image: torch.Tensor | None = None,
                anchor_labels: torch.Tensor | None = None, slots: torch.Tensor | None = None,
                source_slots: torch.Tensor | None = None) -> GeneratorOutput:
        """labels, prev_labels: BxHxW ids (or BxNxHxW one-hot); prev_image: Bx3xHxW in [-1, 1] or None;
        edges, prev_edges: their boundary maps, Bx1xHxW or BxHxW (0/1, any dtype), or None for the labels'
        own edges. Used only with `cfg.instance_edges`. anchor_image, anchor_labels: the frame the class
        palette is taken from (`cfg.class_palette` only; None: I_{i-1}, as in training). slots,
        source_slots: `palette_slots` of S_i and of the palette's source frame
        (`cfg.palette_instances` only; None: class colours alone)."""
        n = self.cfg.num_classes
        seg = labels if labels.dim() == 4 else one_hot(labels, n)
        b, _, h, w = seg.shape
        edges = self.edge_map(labels, seg, edges)
        cond_in = _with_edges(seg, edges)
        conds = self.semantic_encoder.conditions(cond_in)
        if prev_image is None:
            flow = warped = None
            occlusion = seg.new_ones(b, 1, h, w)
            skips = [seg.new_zeros(b, c, h >> l, w >> l) for l, c in enumerate(self.cfg.img_channels)]
            skips.append(seg.new_zeros(b, 3, h, w))
        else:
            prev_seg = prev_labels if prev_labels.dim() == 4 else one_hot(prev_labels, n)
            prev_edges = self.edge_map(prev_labels, prev_seg, prev_edges)
            flow, logits = self.flow_net(_with_edges(prev_seg, prev_edges), cond_in)
            occlusion = torch.sigmoid(logits)
            warped = self._warp(prev_image, flow)
            skips = self.fusion(self.image_encoder(warped), occlusion.to(warped.dtype))
            palette = None
            if self.cfg.class_palette:
                source, source_seg = prev_image, prev_seg
                if anchor_image is not None:
                    source = anchor_image
                    source_seg = anchor_labels if anchor_labels.dim() == 4 else one_hot(anchor_labels, n)
                palette = self._palette(source, source_seg, seg, source_slots, slots)
            return GeneratorOutput(self.decode(conds, skips, occlusion, seg, edges, palette), flow, occlusion, warped,
                                   logits)
        return GeneratorOutput(self.decode(conds, skips, occlusion, seg, edges), flow, occlusion, warped)

    def edge_map(self, labels: torch.Tensor, seg: torch.Tensor, edges: torch.Tensor | None) -> torch.Tensor | None:
        """The boundary channel (Bx1xHxW in seg's dtype) G conditions on: `edges` as given, else the
        semantic edges of `labels` (ids, or the one-hot `seg`); None when the model has no such channel."""
        if not self.edge_channels:
            return None
        b, _, h, w = seg.shape
        if edges is None:
            edges = boundary_map(labels) if labels.dim() == 3 else instance_edges(seg).any(1)
        if edges.dim() == 3:
            edges = edges.unsqueeze(1)
        if tuple(edges.shape) != (b, 1, h, w):
            raise ValueError(f"edges must be Bx1xHxW = {(b, 1, h, w)} like the labels, got {tuple(edges.shape)}")
        return edges.to(seg.dtype)

    def step(self, prev_image: torch.Tensor, prev_labels: torch.Tensor, labels: torch.Tensor,
             first_frame: torch.Tensor, edges: torch.Tensor | None = None,
             prev_edges: torch.Tensor | None = None, anchor_image: torch.Tensor | None = None,
             anchor_labels: torch.Tensor | None = None, slots: torch.Tensor | None = None,
             anchor_slots: torch.Tensor | None = None) -> torch.Tensor:
        """One frame of a stream with the first-frame mode as an input: the graph that export writes.

        labels, prev_labels: BxHxW int ids; first_frame: B, 1 where a sequence starts. First-frame mode
        is the continuing step with OC forced to one (every image skip is then (1 - OC) * ... = 0), so
        one graph serves whole sequences and a batch may mix cameras that start with ones that continue.
        Ids become one-hot by one comparison with 0..N-1, so ids outside [0, N) give all-zero pixels as
        `one_hot` does. edges, prev_edges (Bx1xHxW float, `cfg.instance_edges` only): the boundary maps,
        inputs of the graph like the labels (None: the labels' own edges, outside a graph).
        anchor_image (Bx3xHxW), anchor_labels (BxHxW ids): the stream's first frame, the class palette's
        source (`cfg.class_palette` only; None: I_{i-1}). slots, anchor_slots (BxHxW int64,
        `cfg.palette_instances` only): `palette_slots` of S_i and of the anchor frame.
        """
        class_ids = torch.arange(self.cfg.num_classes, device=labels.device).view(1, -1, 1, 1)
        seg = (labels.unsqueeze(1) == class_ids).to(prev_image.dtype)
        prev_seg = (prev_labels.unsqueeze(1) == class_ids).to(prev_image.dtype)
        edges = self.edge_map(labels, seg, edges)
        prev_edges = self.edge_map(prev_labels, prev_seg, prev_edges)
        seg_in, prev_in = _with_edges(seg, edges), _with_edges(prev_seg, prev_edges)
        conds = self.semantic_encoder.conditions(seg_in)
        flow, logits = self.flow_net(prev_in, seg_in)
        occlusion = torch.maximum(torch.sigmoid(logits), first_frame[:, None, None, None].to(logits.dtype))
        skips = self.fusion(self.image_encoder(self._warp(prev_image, flow)), occlusion.to(prev_image.dtype))
        palette = None
        if self.cfg.class_palette:  # a starting camera has no previous frame: its learnt colours
            source, source_seg = prev_image, prev_seg
            if anchor_image is not None:
                source, source_seg = anchor_image, (anchor_labels.unsqueeze(1) == class_ids).to(prev_image.dtype)
            colour, known = self._palette(source, source_seg, seg, anchor_slots, slots)
            palette = (colour, known * (1.0 - first_frame.to(known.dtype)).view(-1, 1, 1, 1))
        return self.decode(conds, skips, occlusion, seg, edges, palette)

    def _palette(self, source: torch.Tensor, source_seg: torch.Tensor, seg: torch.Tensor,
                 source_slots: torch.Tensor | None, slots: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The (colour, known) each pixel of S_i starts from, taken from `source` (`class_palette`), with
        the source's objects in their own colours where the model has them and slots are given."""
        palette = class_palette(source, source_seg, seg, self.cfg.palette_cells)
        if self.cfg.palette_instances and slots is not None:
            palette = object_palette(palette, source, source_slots, slots, seg, self.cfg.palette_instances)
        return palette

    def _warp(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """WI_{i-1}; bicubic may overshoot, so it is clamped back to the image range."""
        out = warp(image, flow, self.cfg.warp_mode)
        return out if self.cfg.warp_mode == "bilinear" else out.clamp(-1.0, 1.0)

    def decode(self, conds: list[torch.Tensor], skips: list[torch.Tensor], occlusion: torch.Tensor,
               seg: torch.Tensor, edges: torch.Tensor | None = None,
               palette: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Pyramid 3, shared by forward() and step().

        skips: the gated ImageEncoder output, one map per level and last (1 - OC) * WI_{i-1};
        seg: S_i one-hot (BxNxHxW), for the per-class colour; edges: E_i (Bx1xHxW, `edge_map`) or None;
        palette: `class_palette` of its source frame for S_i (`cfg.class_palette`), or None for the learnt colours alone.
        """
        L = self.cfg.levels
        occlusion = occlusion.to(conds[0].dtype)
        if edges is None:
            conds = [torch.cat((c, _pool_to(occlusion, l)), 1) for l, c in enumerate(conds)]
        else:
            edges = edges.to(conds[0].dtype)
            conds = [torch.cat((c, _pool_to(occlusion, l), _pool_to(edges, l)), 1) for l, c in enumerate(conds)]
            seg = torch.cat((seg, edges.to(seg.dtype)), 1)
        x = self.decoder_in(torch.cat((conds[-1][:, : self.cfg.sem_channels[-1]], skips[L - 1]), 1))
        previous_stage, x_coarse = None, x
        for l in reversed(range(L)):
            if l == 0 and self.fade < 1.0 and L > 1:
                previous_stage = F.interpolate(self.to_rgb(x_coarse), scale_factor=2, mode="nearest")
            x = self.decoder[l](x, skips[l], conds[l])
            if l > 0:
                x_coarse = x
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.class_colour is None:
            image = self.to_rgb(x)
        else:
            image = torch.tanh(self.to_rgb[1](self.to_rgb[0](x)) + self._colour(seg, palette))
        if previous_stage is not None:
            image = torch.lerp(previous_stage, image, float(self.fade))
        if self.cfg.occlusion_composite:
            generated = image
            image = occlusion * generated + skips[L]
            if self.cfg.detail_from_decoder:
                # the composite's colours and shading, the decoder's fine detail: detail a warp blurs is
                # drawn again every frame instead of fading over the chain of warps
                image = image + (generated - binomial_blur(generated)) - (image - binomial_blur(image))
            if self.refine is not None:
                image = (image + self.refine(x)).clamp(-1.0, 1.0)
        return image

    def _colour(self, seg: torch.Tensor, palette: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """The pre-tanh colour of every pixel: the learnt class colour, or where `palette` knows the class
        the previous frame's mean colour for it (atanh, so that step 0's tanh paints exactly that mean)."""
        base = self.class_colour(seg)
        if palette is None:
            return base
        colour, known = palette
        n = self.cfg.num_classes
        learnt = torch.einsum("cn,bnhw->bchw", self.class_colour.weight[:, :n, 0, 0].float(), seg[:, :n].float())
        m = colour.clamp(-0.99, 0.99)
        atanh = 0.5 * torch.log((1.0 + m) / (1.0 - m))  # torch.atanh has no ONNX export
        return base + (known * (atanh - learnt)).to(base.dtype)

    @torch.no_grad()
    def grow(self, img_channels: int | None = None, sem_channels: int | None = None, fade: bool = True) -> None:
        """Progressive growing (Section 4.1): one more SPADE block doubles the output resolution.

        Trained weights are kept; the trained levels now see 2x-downsampled inputs, the new finest
        level joins through zero-initialised strided convs, and the flow net keeps its working size.
        With `fade` the new block starts blended out (self.fade = 0): on labels upsampled 2x the grown
        model then outputs the previous stage's image upsampled 2x, and set_fade() blends the block in.
        """
        self.cfg = self.cfg.grown(img_channels=img_channels, sem_channels=sem_channels)
        c = self.cfg
        self.flow_net.downsample = c.flow_downsample
        self.image_encoder.grow(c.img_channels[0])
        self.semantic_encoder.grow(c.sem_channels[0])
        device = self.to_rgb[1].weight.device
        self.decoder.insert(0, self._block(0).to(device))
        self.fade = 0.0 if fade else 1.0

    def set_fade(self, alpha: float) -> None:
        """Blend of the newest finest block after grow(): 0 = previous stage upsampled, 1 = new block."""
        self.fade = min(1.0, max(0.0, float(alpha)))


def autoregress(generator: nn.Module, cfg: ModelConfig, labels: torch.Tensor, prev: torch.Tensor | None, start: int,
                stop: int, edges: torch.Tensor | None = None,
                instances: torch.Tensor | None = None) -> list[GeneratorOutput]:
    """G over frames start..stop-1 of a clip, each from the one before it, detached (no gradient through time):
    what training and a run's sample videos both do. labels: B x T x H x W; prev: frame start - 1
    (B x 3 x H x W), or None for first-frame mode at `start`; edges: B x T x 1 x H x W boundary maps or
    None (the labels' own); instances: B x T x H x W ids, for `cfg.palette_instances` (the objects of
    I_{i-1} that keep their own colour in frame i). `generator` may be a wrapper (DDP) of a model of `cfg`."""
    outs = []
    for i in range(start, stop):
        extra = {} if edges is None else {"edges": edges[:, i]}
        if prev is None:
            out = generator(labels[:, i], **extra)
        else:
            if edges is not None:
                extra["prev_edges"] = edges[:, i - 1]
            if instances is not None and cfg.palette_instances:
                extra["source_slots"], extra["slots"] = palette_slots(
                    labels[:, i - 1], instances[:, i - 1], labels[:, i], instances[:, i], cfg.palette_instances)
            out = generator(labels[:, i], labels[:, i - 1], prev, **extra)
        outs.append(out)
        prev = out.image.detach()
    return outs
