"""Procedural street videos with exact labels and exact backward flow, for tests, the demo and training.

The scene is ray cast, not painted: every pixel knows the 3D point it shows, so
- textures are functions of world (or object) coordinates and move with the scene and the objects,
  which gives meaningful optical flow instead of noise redrawn every frame;
- labels are exact, in the Cityscapes 19-trainId space (the ego-vehicle hood is the ignore id), and so
  are instance ids (every vehicle, pedestrian and cyclist its own, stable over the sequence);
- the backward flow is that point reprojected into the previous camera (rigid parts exactly; swinging
  legs of pedestrians follow the body), at almost no extra cost.
Everything is vectorised over the image; only the handful of visible objects is looped over.

World frame: X right, Y up, Z forward along the road, metres; one time step per frame (~17 fps).
Camera frame: x right, y up, z forward; pixel u = cx + f x / z, v = cy - f y / z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from ..errors import InputError
from .labels import get_label_space

LABEL_SPACE = "cityscapes"
_SPACE = get_label_space(LABEL_SPACE)
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY = (
    _SPACE.index(n) for n in ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                              "traffic sign", "vegetation", "terrain", "sky"))
PERSON, RIDER, CAR, TRUCK, BUS, BICYCLE = (
    _SPACE.index(n) for n in ("person", "rider", "car", "truck", "bus", "bicycle"))
IGNORE = _SPACE.ignore_index  # the ego-vehicle hood, and "empty" inside sprites

_TILE = 256  # noise tile side, cells; a power of two so wrapping is a bit mask
_FAR = 400.0  # metres; farther ground is treated as horizon haze
_SKY_DISTANCE = 1.0e5
_SIDE_OFFSET = 1.0e8  # separates the two facade rows' block keys; pads (_NO_BLOCK) stay below it
_NO_BLOCK = 1.0e7


APPEARANCES = ("default", "random")


def generate_sequence(
    seed: int, num_frames: int, height: int, width: int, *, return_flow: bool = False, supersample: int = 1,
    appearance: str = "default", return_instances: bool = False, touching: bool = False,
) -> tuple[np.ndarray, ...]:
    """Render one synthetic driving sequence; the same arguments always give the same frames.

    Returns (images T×H×W×3 uint8 RGB, labels T×H×W uint8 Cityscapes trainIds, see LABEL_SPACE). With
    `return_flow` it also returns the exact backward flow T×H×W×2 float32 in pixels,
    I_i(x) ≈ I_{i-1}(x + flow_i(x)) (the convention of svsgan_core.data.flow), and its confidence
    T×H×W float32: 1 where that point was visible in frame i-1, 0 where it was hidden or off screen.
    Entry 0 of both is zero. With `return_instances` the last entry is T×H×W uint16 instance ids: 0 for
    stuff, one id per vehicle, pedestrian and cyclist (the same in every frame of the sequence).

    `touching=True` builds streets where objects of one class touch: parking strips on both sides with
    cars parked bumper to bumper in rows, and pedestrians in groups standing or walking shoulder to
    shoulder. The labels merge them into one blob; only the instance ids tell them apart. Without it
    the scenes (and every frame, label and flow) are those of earlier versions.

    `supersample` s renders s×s samples per pixel and averages them (labels take the sample nearest
    the pixel centre): edges then move smoothly instead of stepping a pixel at a time, at s² the cost.

    `appearance="random"` repaints every class with a colour, contrast and world-anchored texture drawn
    per sequence (from an RNG of its own, so layout, labels and flow are those of "default"): the
    labels then cannot predict the colours, only the frames seen before can.
    """
    if num_frames < 1 or height < 8 or width < 8:
        raise InputError(f"synthetic sequence needs num_frames >= 1 and a size of at least 8x8, got "
                         f"{num_frames} frames of {width}x{height}")
    if not 1 <= int(supersample) <= 8:
        raise InputError(f"supersample must be 1..8, got {supersample}")
    if appearance not in APPEARANCES:
        raise InputError(f"appearance must be one of {', '.join(APPEARANCES)}, got {appearance!r}")
    s = int(supersample)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5C5]))
    scene = _build_scene(rng, num_frames, height * s, width * s, touching)
    if appearance == "random":
        scene.appearance = _random_appearance(np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0xA99])))
    renderer = _Renderer(scene, height * s, width * s)
    images = np.empty((num_frames, height, width, 3), np.uint8)
    labels = np.empty((num_frames, height, width), np.uint8)
    flows = np.zeros((num_frames, height, width, 2), np.float32) if return_flow else None
    confs = np.zeros((num_frames, height, width), np.float32) if return_flow else None
    instances = np.empty((num_frames, height, width), np.uint16) if return_instances else None
    previous = None
    for t in range(num_frames):
        frame = renderer.render(t)
        image = frame.image if s == 1 else cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
        images[t] = cv2.GaussianBlur(image, (3, 3), _LENS_BLUR[min(s, 2)])
        labels[t] = frame.labels[s // 2:: s, s // 2:: s]
        if return_instances:
            instances[t] = frame.instances[s // 2:: s, s // 2:: s]
        if return_flow and t > 0:
            flow, conf = renderer.backward_flow(frame, previous, t)
            flows[t] = flow.reshape(height, s, width, s, 2).mean((1, 3)) / s
            confs[t] = conf.reshape(height, s, width, s).mean((1, 3))
        previous = frame
    out = (images, labels, flows, confs) if return_flow else (images, labels)
    return out + (instances,) if return_instances else out


_LENS_BLUR = {1: 0.55, 2: 0.35}  # sigma of the final softening; supersampled frames are soft already


# --------------------------------------------------------------------------------------------------
# Scene description


@dataclass
class _Camera:
    focal: float
    cx: float
    cy: float
    x0: float
    height: float
    speed: float
    sway: float
    sway_freq: float
    yaw0: float
    yaw_amp: float
    yaw_freq: float
    pitch0: float
    bounce: float
    phase: float

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Camera centre and camera-to-world rotation at frame t (gentle sway, yaw and pitch bounce)."""
        centre = np.array([
            self.x0 + self.sway * math.sin(self.sway_freq * t + self.phase),
            self.height + 0.02 * math.sin(1.3 * t + self.phase),
            self.speed * t,
        ])
        yaw = self.yaw0 + self.yaw_amp * math.sin(self.yaw_freq * t + 2 * self.phase)
        pitch = self.pitch0 + self.bounce * math.sin(0.9 * t + 3 * self.phase)
        cy_, sy_ = math.cos(yaw), math.sin(yaw)
        cp, sp = math.cos(pitch), math.sin(pitch)
        rot_yaw = np.array([[cy_, 0, sy_], [0, 1, 0], [-sy_, 0, cy_]])
        rot_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
        return centre, rot_yaw @ rot_pitch


@dataclass
class _Blocks:
    """Facade blocks along Z on one vertical plane per side; block b of side s is row s * n + b."""

    edges: np.ndarray  # (side, n+1) block boundaries in Z
    kind: np.ndarray  # (2n,) 0 none, 1 building, 2 vegetation, 3 wall, 4 fence
    height: np.ndarray  # (2n,)
    colour: np.ndarray  # (2n, 3)
    window_w: np.ndarray  # (2n,) window pitch along the facade
    floor_h: np.ndarray  # (2n,)
    window_frac: np.ndarray  # (2n, 2) window share of the pitch (horizontal, vertical)
    glass: np.ndarray  # (2n, 3)
    shop: np.ndarray  # (2n,) ground floor with shop windows

    def lookup(self, side: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Block row for (side, z) pairs; both sides are searched in one call by offsetting the keys."""
        n = self.edges.shape[1] - 1
        keys = np.concatenate([self.edges[0][1:], self.edges[1][1:] + _SIDE_OFFSET])
        idx = np.searchsorted(keys, z.astype(np.float64) + side * _SIDE_OFFSET, side="right")
        return np.minimum(idx, side * n + n - 1)


@dataclass
class _Look:
    """How one side of an object looks; the renderer draws it once into a sprite, cached by `key`."""

    key: tuple
    shape: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (a, y) in metres -> part index, 0 = empty
    a_range: tuple[float, float]
    y_range: tuple[float, float]
    labels: np.ndarray  # part -> trainId
    colours: np.ndarray  # part -> rgb
    texture: np.ndarray  # part -> texture strength
    tex_key: tuple[float, float]


@dataclass
class _Face:
    """Where one look of an object stands in one frame: a vertical plane, facing the camera or sideways."""

    axis: int  # 2: plane of constant Z (faces the camera), 0: plane of constant X (faces sideways)
    plane: float  # the constant coordinate
    origin: float  # local coordinate a = (X or Z) - origin, along the plane
    a_range: tuple[float, float]  # the part drawn this frame (clipped near the camera)
    look: _Look
    shade: float
    velocity: tuple[float, float]  # (vx, vz), metres per frame, for the flow
    instance: int = 0  # the object's instance id, 0 for stuff (lamps, trees, signs)


@dataclass
class _Sprite:
    """A look drawn on a texel grid, stored in the atlas from `offset` (row-major, ny×na, row 0 at the bottom)."""

    offset: int
    na: int
    ny: int
    a0: float
    y0: float
    scale: float  # texels per metre


_ATLAS_COLOUR_SCALE = 200.0  # colours are stored as uint8 (value × scale), leaving headroom above 1.0


class _SpriteAtlas:
    """All sprites of a sequence in two flat arrays, so every face of a frame is drawn in one vectorised pass."""

    def __init__(self) -> None:
        self.labels = np.empty(1 << 16, np.uint8)
        self.colour = np.empty((1 << 16, 3), np.uint8)
        self.used = 0
        self.sprites: dict[tuple, _Sprite] = {}

    def add(self, key: tuple, labels: np.ndarray, colour: np.ndarray, a0: float, y0: float, scale: float) -> _Sprite:
        size = labels.size
        if self.used + size > self.labels.size:
            capacity = max(2 * self.labels.size, self.used + size)
            self.labels = np.resize(self.labels, capacity)
            self.colour = np.resize(self.colour, (capacity, 3))
        self.labels[self.used: self.used + size] = labels.ravel()
        self.colour[self.used: self.used + size] = np.clip(colour * _ATLAS_COLOUR_SCALE + 0.5, 0, 255).reshape(-1, 3)
        sprite = _Sprite(self.used, labels.shape[1], labels.shape[0], a0, y0, scale)
        self.used += size
        self.sprites[key] = sprite
        return sprite


@dataclass
class _Actor:
    """Anything that is not part of the road/facade layout: an object moving at constant velocity."""

    x: float
    z: float
    vx: float
    vz: float
    faces: Callable[["_Actor", float, float, float], list[_Face]]  # (self, t, cam_x, cam_z)
    data: dict = field(default_factory=dict)

    def position(self, t: float) -> tuple[float, float]:
        return self.x + self.vx * t, self.z + self.vz * t


@dataclass
class _Scene:
    camera: _Camera
    road_half: float
    lane_width: float
    lanes: int
    parking: tuple[float, float]  # extra asphalt beyond the lanes, left and right
    lawn: tuple[float, float]  # terrain strip between curb and sidewalk
    sidewalk: tuple[float, float]
    front: _Blocks
    back: _Blocks
    front_x: tuple[float, float]
    back_x: tuple[float, float]
    cross: tuple[float, float] | None  # cross street band in Z
    actors: list[_Actor]
    palette: dict
    light: dict
    noise: np.ndarray
    hood: float  # ego hood height as a fraction of the image, 0 for none
    appearance: "_Appearance | None" = None  # per-sequence repainting of every class ("random" mode)


@dataclass
class _Appearance:
    """Per-class look of one sequence in "random" mode; tables are indexed by trainId (0..255)."""

    colour: np.ndarray  # (256, 3) base colour
    contrast: np.ndarray  # (256,) exponent on the rendered shading: 0 flat, 1 as rendered
    texture: np.ndarray  # (256,) strength of the extra texture
    scale: np.ndarray  # (256,) texture cells per metre
    offset: np.ndarray  # (256, 2) where in the noise tile each class's texture starts
    grey: np.ndarray  # (256,) rendered luminance that maps to `colour`: the class's mean where first seen


def _random_appearance(rng: np.random.Generator) -> _Appearance:
    """Colours uniform in RGB, so a class's colour over many sequences averages to grey."""
    colour = rng.uniform(0.06, 0.94, (256, 3)).astype(np.float32)
    texture = rng.uniform(0.0, 0.45, 256).astype(np.float32)
    texture[SKY] = 0.0  # the sky is at infinity: no surface to anchor a texture to
    return _Appearance(colour=colour, contrast=rng.uniform(0.3, 1.2, 256).astype(np.float32), texture=texture,
                       scale=rng.uniform(0.7, 6.0, 256).astype(np.float32),
                       offset=rng.uniform(0, _TILE, (256, 2)).astype(np.float32),
                       grey=np.full(256, np.nan, np.float32))


def _repaint(look: _Appearance, noise: np.ndarray, labels: np.ndarray, colour: np.ndarray, point: np.ndarray,
             velocity: np.ndarray, t: float) -> np.ndarray:
    """colour_c × (rendered shading / its class mean)^contrast_c × texture_c: keeps the drawn detail (markings, windows,
    shadows) as shading and the motion of every surface (the texture is sampled at the point in the
    object's own frame), but the hue and brightness come from this sequence's draw."""
    lum = np.maximum(colour.mean(-1), 1e-3)
    new = np.unique(labels[np.isnan(look.grey[labels])])
    for c in new.tolist():  # fixed once per sequence, so the shading cannot flicker
        look.grey[c] = lum[labels == c].mean()
    shading = np.power(lum / look.grey[labels], look.contrast[labels])
    body = point.copy()  # object coordinates: actors move at constant velocity
    body[:, 0] -= velocity[:, 0] * np.float32(t)
    body[:, 2] -= velocity[:, 1] * np.float32(t)
    strength = look.texture[labels]
    grain = np.ones_like(shading)
    textured = np.flatnonzero((strength > 0) & np.isfinite(body).all(-1))
    if textured.size:
        lab, b = labels[textured], body[textured]
        scale = look.scale[lab]
        # a linear projection that is one-to-one on the ground (Y=0), the facades (X const) and the
        # camera-facing planes (Z const), reduced into the tile so far points keep fp32 precision
        u = np.mod((b[:, 0] + 0.7 * b[:, 2]) * scale, _TILE) + look.offset[lab, 0]
        v = np.mod((b[:, 1] + 0.3 * b[:, 2]) * scale, _TILE) + look.offset[lab, 1]
        n = _sample_noise_smooth(noise, u, v)
        grain[textured] = 1 + strength[textured] * (n[:, 0] * 0.5 + n[:, 1] * 0.5 - 0.5) * 4
    return (look.colour[labels] * (shading * grain)[:, None]).astype(np.float32)


_BUILDING_COLOURS = np.array([
    (0.74, 0.69, 0.60), (0.60, 0.60, 0.62), (0.55, 0.33, 0.26), (0.84, 0.82, 0.77), (0.70, 0.60, 0.46),
    (0.45, 0.47, 0.50), (0.84, 0.77, 0.55), (0.60, 0.67, 0.74), (0.66, 0.52, 0.46), (0.78, 0.74, 0.70),
], np.float32)
_CAR_COLOURS = np.array([
    (0.85, 0.85, 0.85), (0.62, 0.63, 0.65), (0.08, 0.08, 0.09), (0.10, 0.16, 0.35), (0.55, 0.07, 0.06),
    (0.35, 0.36, 0.38), (0.12, 0.26, 0.18), (0.80, 0.78, 0.70), (0.20, 0.30, 0.55), (0.45, 0.12, 0.10),
], np.float32)
_CLOTH_COLOURS = np.array([
    (0.10, 0.10, 0.12), (0.15, 0.20, 0.38), (0.55, 0.10, 0.12), (0.80, 0.78, 0.72), (0.30, 0.35, 0.25),
    (0.45, 0.40, 0.35), (0.65, 0.55, 0.20), (0.25, 0.25, 0.28), (0.70, 0.40, 0.45), (0.20, 0.45, 0.55),
], np.float32)
_SKIN = np.array([(0.85, 0.68, 0.55), (0.70, 0.52, 0.40), (0.45, 0.32, 0.24), (0.93, 0.78, 0.66)], np.float32)


def _periodic_noise(rng: np.random.Generator) -> np.ndarray:
    """A _TILE² tile of smooth periodic noise, three octaves as channels (fine, medium, coarse), in [0, 1]."""
    freq = np.fft.fftfreq(_TILE)
    k2 = freq[:, None] ** 2 + freq[None, :] ** 2
    octaves = []
    for sigma in (0.7, 3.0, 12.0):
        spectrum = np.fft.fft2(rng.standard_normal((_TILE, _TILE))) * np.exp(-2 * (math.pi * sigma) ** 2 * k2)
        smooth = np.fft.ifft2(spectrum).real
        smooth = (smooth - smooth.mean()) / (smooth.std() + 1e-8)
        octaves.append(np.clip(0.5 + 0.18 * smooth, 0.0, 1.0))
    return np.stack(octaves, -1).astype(np.float32).reshape(-1, 3)


def _sample_noise(noise: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest lookup of the noise tile at cell coordinates (u, v): (..., 3) octaves."""
    iu = (u + 65536.0).astype(np.int32) & (_TILE - 1)
    iv = (v + 65536.0).astype(np.int32) & (_TILE - 1)
    return noise[iv * _TILE + iu]


def _sample_noise_smooth(noise: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup: no visible cells when magnified (used where the result is cached, sprites)."""
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = (u - u0)[..., None], (v - v0)[..., None]
    top = _sample_noise(noise, u0, v0) * (1 - fu) + _sample_noise(noise, u0 + 1, v0) * fu
    bottom = _sample_noise(noise, u0, v0 + 1) * (1 - fu) + _sample_noise(noise, u0 + 1, v0 + 1) * fu
    return top * (1 - fv) + bottom * fv


def _make_blocks(rng: np.random.Generator, z_start: float, z_end: float, cross, back: bool) -> _Blocks:
    sides = []
    for _ in range(2):
        edges, kinds = [z_start], []
        while edges[-1] < z_end:
            length = rng.uniform(10, 40) if back else rng.uniform(7, 30)
            z0 = edges[-1]
            if cross is not None and z0 < cross[0] <= z0 + length:
                length = cross[0] - z0
                edges.append(z0 + length)
                kinds.append(_pick_block(rng, back))
                edges.append(cross[1])
                kinds.append(0)
                continue
            edges.append(z0 + max(length, 1.0))
            kinds.append(_pick_block(rng, back))
        sides.append((np.array(edges), np.array(kinds)))
    n = max(len(k) for _, k in sides)
    shape = (2, n)
    edges = np.full((2, n + 1), _NO_BLOCK)
    kind = np.zeros(shape, np.int64)
    for s, (e, k) in enumerate(sides):
        edges[s, : len(e)] = e
        kind[s, : len(k)] = k
    height = np.where(kind == 1, rng.uniform(9, 30 if back else 24, shape), 0.0)
    height = np.where(kind == 2, rng.uniform(4, 14, shape), height)
    height = np.where(kind == 3, rng.uniform(1.2, 2.6, shape), height)
    height = np.where(kind == 4, rng.uniform(1.2, 2.0, shape), height)
    colour = _BUILDING_COLOURS[rng.integers(0, len(_BUILDING_COLOURS), shape)]
    colour = colour * rng.uniform(0.85, 1.1, shape + (1,)).astype(np.float32)
    wall_grey = rng.uniform(0.45, 0.7, shape)[..., None] * np.array([1.0, 0.98, 0.94], np.float32)
    colour = np.where((kind == 3)[..., None], wall_grey, colour)
    colour = np.where((kind == 4)[..., None], np.array([0.42, 0.43, 0.42], np.float32), colour)
    glass = rng.uniform(0.1, 0.3, shape)[..., None] * np.array([0.9, 1.0, 1.15], np.float32)
    window_w, floor_h = rng.uniform(2.2, 4.0, shape), rng.uniform(2.9, 3.6, shape)
    window_frac = rng.uniform((0.35, 0.35), (0.7, 0.65), shape + (2,))
    shop = rng.random(shape) < 0.4

    def rows(a: np.ndarray) -> np.ndarray:
        a = a.reshape((2 * n,) + a.shape[2:])
        return a.astype(np.float32) if a.dtype.kind == "f" else a

    return _Blocks(edges=edges, kind=rows(kind), height=rows(height), colour=rows(colour), window_w=rows(window_w),
                   floor_h=rows(floor_h), window_frac=rows(window_frac), glass=rows(glass), shop=rows(shop))


def _pick_block(rng: np.random.Generator, back: bool) -> int:
    p = (0.0, 0.62, 0.38, 0.0, 0.0) if back else (0.0, 0.68, 0.16, 0.09, 0.07)
    return int(rng.choice(5, p=p))


def _build_scene(rng: np.random.Generator, num_frames: int, height: int, width: int, touching: bool = False) -> _Scene:
    lanes = int(rng.choice([2, 2, 3, 4]))
    lane_width = rng.uniform(2.9, 3.6)
    parking = tuple(float(x) for x in np.where(rng.random(2) < 0.55, rng.uniform(2.0, 2.5, 2), 0.0))
    if touching:  # rows of parked cars on both sides (no draw of its own: the rest of the street stays)
        parking = tuple(p if p > 0 else 2.25 for p in parking)
    road_half_lanes = lanes * lane_width / 2
    lawn = tuple(float(x) for x in np.where(rng.random(2) < 0.4, rng.uniform(1.0, 2.5, 2), 0.0))
    sidewalk = tuple(float(x) for x in rng.uniform(2.0, 4.5, 2))
    setback = rng.uniform(0.0, 2.5, 2)
    front_x = tuple(float(road_half_lanes + parking[s] + lawn[s] + sidewalk[s] + setback[s]) for s in range(2))
    back_x = tuple(float(front_x[s] + rng.uniform(12, 30)) for s in range(2))

    ego_lane = lanes // 2  # the first lane right of the centre line
    camera = _Camera(
        focal=width * rng.uniform(0.55, 0.85),
        cx=width / 2, cy=height * rng.uniform(0.40, 0.48),
        x0=-road_half_lanes + (ego_lane + 0.5) * lane_width,
        height=rng.uniform(1.3, 1.7),
        speed=rng.uniform(0.15, 1.0) if rng.random() < 0.9 else 0.0,
        sway=rng.uniform(0.0, 0.25), sway_freq=rng.uniform(0.03, 0.1),
        yaw0=rng.uniform(-0.04, 0.04), yaw_amp=rng.uniform(0.0, 0.03), yaw_freq=rng.uniform(0.05, 0.15),
        pitch0=rng.uniform(-0.03, 0.02), bounce=rng.uniform(0.0, 0.004), phase=rng.uniform(0, 2 * math.pi),
    )
    travel = camera.speed * max(num_frames - 1, 0)
    z_end = travel + 260.0
    cross = None
    if rng.random() < 0.6:
        z_cross = rng.uniform(18, 55) + travel * rng.uniform(0.2, 0.9)
        cross = (float(z_cross), float(z_cross + rng.uniform(11, 16)))
    front = _make_blocks(rng, -30.0, z_end, cross, back=False)
    back = _make_blocks(rng, -30.0, z_end, cross, back=True)

    overcast = rng.random() < 0.35
    sun = 0.0 if overcast else rng.uniform(0.5, 1.0)
    light = {
        "sun": sun,
        "sun_side": int(rng.integers(0, 2)),  # which row of buildings faces the sun
        "shadow_reach": rng.uniform(0.3, 1.2),  # shadow length per metre of building height
        "exposure": rng.uniform(0.85, 1.2),
        "tint": (1.0 + rng.uniform(-0.07, 0.07, 3)).astype(np.float32),
        "haze": rng.uniform(60, 250) if not overcast else rng.uniform(40, 120),
        "saturation": rng.uniform(0.75, 1.15),
        "clouds": rng.uniform(0.0, 0.9) if not overcast else 1.0,
        "warm": rng.uniform(-0.05, 0.1),
    }
    sky_top = np.array((0.30, 0.50, 0.85), np.float32) * rng.uniform(0.85, 1.1)
    sky_horizon = np.array((0.72, 0.80, 0.90), np.float32)
    if overcast:
        grey = rng.uniform(0.68, 0.86)
        sky_top = np.array((grey, grey + 0.01, grey + 0.04), np.float32)
        sky_horizon = np.minimum(sky_top + 0.08, 1.0)
    asphalt = rng.uniform(0.24, 0.40)
    palette = {
        "asphalt": np.array((asphalt, asphalt, asphalt * 1.05), np.float32),
        "marking": np.array((0.86, 0.86, 0.82), np.float32),
        "sidewalk": (np.array((0.58, 0.56, 0.54), np.float32) if rng.random() < 0.6
                     else np.array((0.62, 0.47, 0.43), np.float32)) * rng.uniform(0.85, 1.1),
        "curb": np.array((0.66, 0.66, 0.64), np.float32),
        "terrain": (np.array((0.33, 0.45, 0.19), np.float32) if rng.random() < 0.7
                    else np.array((0.50, 0.47, 0.30), np.float32)),
        "vegetation": np.array((0.17, 0.32, 0.10), np.float32) * rng.uniform(0.8, 1.2),
        "sky_top": sky_top, "sky_horizon": sky_horizon,
        "tile": rng.uniform(0.3, 0.6),
        "lane_dash": rng.uniform(2.5, 4.0), "lane_gap": rng.uniform(4.0, 8.0),
    }
    scene = _Scene(
        camera=camera, road_half=road_half_lanes, lane_width=lane_width, lanes=lanes, parking=parking,
        lawn=lawn, sidewalk=sidewalk, front=front, back=back, front_x=front_x, back_x=back_x, cross=cross,
        actors=[], palette=palette, light=light, noise=_periodic_noise(rng),
        hood=rng.uniform(0.05, 0.11) if rng.random() < 0.5 else 0.0,
    )
    scene.actors = _make_actors(rng, scene, num_frames, z_end, touching)
    return scene


# --------------------------------------------------------------------------------------------------
# Objects: shapes are functions of the local face coordinates (a along the plane, y up), in metres


def _vehicle_end(dims: dict, front: bool) -> Callable:
    """A vehicle seen from behind (tail lights) or from the front (head lights)."""
    half, top, body_top, kind = dims["half_width"], dims["height"], dims["body_top"], dims["kind"]

    def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
        aa = np.abs(a)
        part = np.zeros(a.shape, np.uint8)
        lower = (y > 0.12) & (y < body_top) & (aa < half)
        part[lower] = 1
        part[lower & (y < 0.32)] = 6
        part[(y < 0.62) & (aa > half - 0.32) & (aa < half)] = 3
        if kind == "car":
            taper = half - 0.28 * (y - body_top) / (top - body_top) - 0.08
            cabin = (y >= body_top) & (y < top) & (aa < taper)
            part[cabin] = 1
            part[cabin & (aa < taper - 0.1) & (y > body_top + 0.06) & (y < top - 0.07)] = 2
        else:
            box = (y >= body_top) & (y < top) & (aa < half)
            part[box] = 1
            if front or kind == "bus":
                part[box & (aa < half - 0.12) & (y > body_top + 0.1) & (y < top - 0.25)] = 2
        light_row = (y > body_top - 0.3) & (y < body_top - 0.1) & (aa > half - 0.36) & (aa < half - 0.06)
        part[light_row] = 4
        part[(aa < 0.26) & (y > 0.38) & (y < 0.5)] = 5
        return part

    return shape


def _vehicle_side(dims: dict, forward: float) -> Callable:
    """A vehicle's side profile; `forward` is +1 when the front points to growing a."""
    half_len, top, body_top, kind = dims["half_length"], dims["height"], dims["body_top"], dims["kind"]
    wheel_r = 0.34 if kind == "car" else 0.5
    axle = half_len - (0.85 if kind == "car" else 1.3)

    def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
        s = a * forward
        part = np.zeros(a.shape, np.uint8)
        body = (y > 0.22) & (y < body_top) & (np.abs(s) < half_len - 0.1 * np.maximum(y - body_top + 0.3, 0) / 0.3)
        part[body] = 1
        if kind == "car":
            lo, hi = -half_len + 0.9, half_len - 1.3
            cabin = (y >= body_top) & (y < top) & (s > lo + 0.55 * (y - body_top) / (top - body_top) * 1.2) \
                & (s < hi - 0.7 * (y - body_top) / (top - body_top) * 1.2)
            part[cabin] = 1
            part[cabin & (y > body_top + 0.05) & (y < top - 0.07) & (np.abs(s - (lo + hi) / 2 + 0.1) > 0.05)] = 2
        elif kind == "truck":
            cab = (y >= body_top) & (y < top - 0.4) & (s > half_len - 2.2)
            part[cab] = 1
            part[cab & (y > body_top + 0.3) & (s > half_len - 1.2)] = 2
            part[(y >= body_top) & (y < top) & (s < half_len - 2.4)] = 7
        else:
            box = (y >= body_top) & (y < top) & (np.abs(s) < half_len)
            part[box] = 1
            part[box & (y > body_top + 0.25) & (y < top - 0.45) & (np.abs(s) < half_len - 0.3)
                 & ((s % 1.6) > 0.12)] = 2
        part[(y > body_top - 0.35) & (y < body_top - 0.15) & (s > half_len - 0.25) & (s < half_len)] = 4
        wheel = ((np.abs(s) - axle) ** 2 + (y - wheel_r) ** 2) < wheel_r**2
        part[wheel] = 3
        part[wheel & (((np.abs(s) - axle) ** 2 + (y - wheel_r) ** 2) < (0.45 * wheel_r) ** 2)] = 8
        return part

    return shape


def _vehicle_look(d: dict, end: bool, front: bool, forward: float, a_range: tuple) -> _Look:
    shape = _vehicle_end(d["dims"], front) if end else _vehicle_side(d["dims"], forward)
    tex_key = d["tex_key"] if end else (d["tex_key"][1], d["tex_key"][0])
    return _Look((d["uid"], end, front, forward), shape, a_range, (0.0, d["dims"]["height"]), d["labels"],
                 d["colours_front" if front else "colours"], d["texture"], tex_key)


def _vehicle_faces(actor: _Actor, t: float, cam_x: float, cam_z: float) -> list[_Face]:
    """The box's face towards the camera (constant Z) and the side the camera sees (constant X)."""
    d = actor.data
    x, z = actor.position(t)
    ex, ez = d["extent"]
    along_z = d["along_z"]
    faces = []
    if cam_z < z - ez - 0.3:
        front = along_z and d["heading"] < 0
        look = _vehicle_look(d, along_z, front, d["heading"], (-ex, ex))
        faces.append(_Face(2, z - ez, x, (-ex, ex), look, d["shade_z"], (actor.vx, actor.vz), d["instance"]))
    if abs(cam_x - x) > ex + 0.05:
        side = 1.0 if cam_x > x else -1.0
        front = not along_z and d["heading"] * side > 0
        look = _vehicle_look(d, not along_z, front, d["heading"], (-ez, ez))
        lo = max(-ez, cam_z + 0.4 - z)
        if lo < ez:
            faces.append(_Face(0, x + side * ex, z, (lo, ez), look, d["shade_x"][int(side > 0)],
                               (actor.vx, actor.vz), d["instance"]))
    return faces


_GAIT_PHASES = 6  # walking and pedalling are drawn in this many poses per cycle


def _billboard_faces(actor: _Actor, t: float, cam_x: float, cam_z: float) -> list[_Face]:
    d = actor.data
    x, z = actor.position(t)
    if z - cam_z < 0.8:
        return []
    if "gait" in d:
        pose = int(round((d["phase"] + d["cadence"] * t) / (2 * math.pi) * _GAIT_PHASES)) % _GAIT_PHASES
        shape, key = d["gait"](pose), (d["uid"], pose)
    else:
        shape, key = d["shape"], (d["uid"],)
    faces = []
    for piece, (a_range, y_range) in enumerate(d["pieces"]):
        look = _Look((*key, piece), shape, a_range, y_range, d["labels"], d["colours"], d["texture"], d["tex_key"])
        faces.append(_Face(2, z, x, a_range, look, d["shade_z"], (actor.vx, actor.vz), d.get("instance", 0)))
    return faces


def _person_shape(height: float, width: float, stride: float) -> Callable[[int], Callable]:
    """A walking person in one of the gait poses: the legs swing, the rest is rigid."""

    def at(pose: int) -> Callable:
        swing = stride * math.sin(2 * math.pi * pose / _GAIT_PHASES)

        def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
            h = height
            part = np.zeros(a.shape, np.uint8)
            hip = 0.47 * h
            leg_t = np.clip((hip - y) / hip, 0, 1)
            left = np.abs(a + 0.07 * width / 0.5 - swing * leg_t) < 0.075
            right = np.abs(a - 0.07 * width / 0.5 + swing * leg_t) < 0.075
            part[(y < hip) & (y > 0.04) & (left | right)] = 3
            part[(y <= 0.05) & (left | right)] = 4
            shoulder = 0.81 * h
            torso = (y >= hip - 0.02) & (y < shoulder) & (np.abs(a) < width * (0.36 + 0.1 * (y - hip) / (shoulder - hip)))
            part[torso] = 2
            arms = (y > hip - 0.05) & (y < shoulder) & (np.abs(a) >= width * 0.44) & (np.abs(a) < width * 0.56)
            part[arms] = 2
            part[arms & (y < hip + 0.06)] = 1
            head_y = h - 0.12
            head = (a / 0.095) ** 2 + ((y - head_y) / 0.125) ** 2 < 1
            part[head] = 1
            part[head & (y > head_y + 0.02)] = 5
            part[(np.abs(a) < 0.05) & (y >= shoulder) & (y < head_y - 0.1)] = 1
            return part

        return shape

    return at


def _cyclist_shape(height: float) -> Callable[[int], Callable]:
    """A cyclist seen from behind in one of the pedalling poses: bicycle (wheel, frame, bar) and rider."""

    def at(pose: int) -> Callable:
        pedal = 0.12 * math.sin(2 * math.pi * pose / _GAIT_PHASES)

        def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
            part = np.zeros(a.shape, np.uint8)
            part[(np.abs(a) < 0.03) & (y < 0.68)] = 6
            part[(np.abs(a) < 0.28) & (np.abs(y - 1.02) < 0.025)] = 6
            part[(np.abs(a) < 0.05) & (y > 0.68) & (y < 0.95)] = 6
            leg = ((np.abs(a + 0.12) < 0.06) & (y > 0.45 + pedal) & (y < 0.95)) | \
                  ((np.abs(a - 0.12) < 0.06) & (y > 0.45 - pedal) & (y < 0.95))
            part[leg] = 3
            torso = (y >= 0.9) & (y < height - 0.3) & (np.abs(a) < 0.2)
            part[torso] = 2
            arms = (y > 1.0) & (y < height - 0.35) & (np.abs(a) > 0.2) & (np.abs(a) < 0.27)
            part[arms] = 2
            head = (a / 0.1) ** 2 + ((y - height + 0.14) / 0.13) ** 2 < 1
            part[head] = 5
            return part

        return shape

    return at


_CROWN_REACH = 0.65  # half the crown's largest extent over its nominal size (the wobble stretches it to 1.28)


def _tree_shape(trunk_h: float, crown_r: float, crown_h: float, noise: np.ndarray, key: tuple) -> Callable:
    """A trunk and a crown: an ellipse whose outline wobbles with the noise (leaves)."""

    def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
        part = np.zeros(a.shape, np.uint8)
        part[(np.abs(a) < 0.13 + 0.02 * (trunk_h - y)) & (y < trunk_h + crown_h * 0.3)] = 1
        cy = trunk_h + crown_h / 2
        wobble = _sample_noise_smooth(noise, a * 2.5 + key[0], y * 2.5 + key[1])[..., 1]
        inside = (a / crown_r) ** 2 + ((y - cy) / (crown_h / 2)) ** 2 + 1.6 * (wobble - 0.5) < 1
        part[inside] = 2
        return part

    return shape


def _pole_shape(height: float, arm: float) -> Callable:
    """A street lamp: mast, and an arm over the road (a < 0 side when arm < 0)."""

    def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
        part = np.zeros(a.shape, np.uint8)
        part[(np.abs(a) < 0.09 - 0.004 * y) & (y < height)] = 1
        lo, hi = min(0.0, arm), max(0.0, arm)
        part[(a > lo) & (a < hi) & (np.abs(y - height + 0.1) < 0.07)] = 1
        part[(np.abs(a - arm) < 0.35) & (y > height - 0.22) & (y < height - 0.05)] = 2
        return part

    return shape


def _sign_shape(form: int) -> Callable:
    """Pole with a sign plate: 0 round, 1 triangle, 2 square."""

    def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
        part = np.zeros(a.shape, np.uint8)
        part[(np.abs(a) < 0.04) & (y < 2.6)] = 1
        r = np.hypot(a, y - 2.35)
        if form == 0:
            plate, inner = r < 0.32, r < 0.23
        elif form == 1:
            plate = (y > 2.08) & (y < 2.62) & (np.abs(a) < (2.62 - y) * 0.62)
            inner = (y > 2.16) & (y < 2.5) & (np.abs(a) < (2.5 - y) * 0.5)
        else:
            plate, inner = (np.abs(a) < 0.3) & (np.abs(y - 2.35) < 0.3), (np.abs(a) < 0.24) & (np.abs(y - 2.35) < 0.24)
        part[plate] = 2
        part[inner] = 3
        return part

    return shape


def _traffic_light_shape(state: int) -> Callable:
    def shape(a: np.ndarray, y: np.ndarray) -> np.ndarray:
        part = np.zeros(a.shape, np.uint8)
        part[(np.abs(a) < 0.07) & (y < 3.4)] = 1
        box = (np.abs(a) < 0.2) & (y > 3.3) & (y < 4.25)
        part[box] = 2
        for i, cy in enumerate((4.05, 3.78, 3.5)):
            part[box & (np.hypot(a, y - cy) < 0.1)] = 4 + i if i == state else 3
        return part

    return shape


def _lut(items: list[tuple[int, tuple, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Part tables from (label, rgb, texture) rows; part 0 (empty) is prepended."""
    labels = np.array([IGNORE] + [i[0] for i in items], np.uint8)
    colours = np.array([(0, 0, 0)] + [i[1] for i in items], np.float32)
    texture = np.array([0.0] + [i[2] for i in items], np.float32)
    return labels, colours, texture


def _make_actors(rng: np.random.Generator, scene: _Scene, num_frames: int, z_end: float,
                 touching: bool = False) -> list[_Actor]:
    actors: list[_Actor] = []
    cam = scene.camera
    rh, lw = scene.road_half, scene.lane_width
    shade_sun = scene.light["sun"]
    sun_side = scene.light["sun_side"]
    duration = max(num_frames - 1, 1)
    travel = cam.speed * duration

    def key() -> tuple[float, float]:
        return float(rng.uniform(0, _TILE)), float(rng.uniform(0, _TILE))

    def side_shades() -> tuple[float, float]:
        # faces whose normal points to -X (index 0) or +X (index 1); the sun lights one of them
        lit, dark = 1.0, 1.0 - 0.35 * shade_sun
        return (lit, dark) if sun_side == 1 else (dark, lit)

    def vehicle(x: float, z: float, vx: float, vz: float, along_z: bool, heading: float, kind: str) -> None:
        if kind == "car":
            half_w, half_l, height, body_top = rng.uniform(0.85, 1.0), rng.uniform(2.0, 2.45), rng.uniform(1.4, 1.6), 0.9
            label = CAR
        elif kind == "truck":
            half_w, half_l, height, body_top = 1.2, rng.uniform(3.0, 4.5), rng.uniform(2.8, 3.4), 1.1
            label = TRUCK
        else:
            half_w, half_l, height, body_top = 1.25, rng.uniform(5.0, 6.0), 3.1, 1.0
            label = BUS
        body = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.9, 1.1)
        if kind == "bus":
            body = np.array([(0.85, 0.80, 0.15), (0.85, 0.85, 0.85), (0.7, 0.1, 0.1)][rng.integers(3)], np.float32)
        cargo = np.array((0.8, 0.8, 0.78), np.float32) * rng.uniform(0.7, 1.05)
        rows = [(label, tuple(body), 0.12), (label, (0.10, 0.12, 0.15), 0.25), (label, (0.05, 0.05, 0.05), 0.1),
                (label, (0.75, 0.08, 0.06), 0.1), (label, (0.85, 0.85, 0.8), 0.05), (label, (0.08, 0.08, 0.09), 0.1),
                (label, tuple(cargo), 0.15), (label, (0.55, 0.55, 0.55), 0.1)]
        labels, colours, texture = _lut(rows)
        colours_front = colours.copy()
        colours_front[4] = (0.95, 0.93, 0.85)
        extent = (half_w, half_l) if along_z else (half_l, half_w)
        dims = {"kind": kind, "half_width": half_w, "half_length": half_l, "height": height, "body_top": body_top}
        actors.append(_Actor(x, z, vx, vz, _vehicle_faces, {
            "uid": len(actors), "instance": len(actors) + 1, "extent": extent, "along_z": along_z, "heading": heading, "dims": dims, "labels": labels,
            "colours": colours, "colours_front": colours_front, "texture": texture, "tex_key": key(),
            "shade_z": 0.92 - 0.1 * shade_sun, "shade_x": side_shades()}))

    def billboard(x, z, vx, vz, shape, a_range, y_range, rows, cadence=0.0, pieces=None, thing=False) -> None:
        """`shape` maps (a, y) to parts, or with a `cadence` (radians per frame) a gait pose to such a map.

        `pieces`, disjoint (a_range, y_range) rectangles covering the shape, replace the one bounding
        rectangle for shapes that fill it poorly (a lamp's mast and arm, a tree's trunk and crown).
        `thing`: an object with an instance id of its own (a pedestrian, a cyclist), not stuff.
        """
        labels, colours, texture = _lut(rows)
        data = {"uid": len(actors), "instance": len(actors) + 1 if thing else 0,
                "pieces": pieces or [(a_range, y_range)], "labels": labels,
                "colours": colours, "texture": texture, "tex_key": key(), "shade_z": 0.95 - 0.1 * shade_sun}
        if cadence:
            data.update(gait=shape, phase=float(rng.uniform(0, 2 * math.pi)), cadence=cadence)
        else:
            data["shape"] = shape
        actors.append(_Actor(x, z, vx, vz, _billboard_faces, data))

    def person(x, z, vx, vz) -> None:
        h = rng.uniform(1.55, 1.92)
        w = rng.uniform(0.42, 0.55)
        moving = abs(vx) + abs(vz) > 1e-3
        shape = _person_shape(h, w, 0.13)
        skin = _SKIN[rng.integers(len(_SKIN))]
        rows = [(PERSON, tuple(skin), 0.05), (PERSON, tuple(_CLOTH_COLOURS[rng.integers(10)]), 0.2),
                (PERSON, tuple(_CLOTH_COLOURS[rng.integers(10)] * 0.8), 0.2), (PERSON, (0.1, 0.09, 0.08), 0.1),
                (PERSON, tuple(np.array((0.15, 0.1, 0.07)) * rng.uniform(0.5, 3.0)), 0.1)]
        billboard(x, z, vx, vz, shape if moving else shape(0), (-w * 0.6, w * 0.6), (0.0, h), rows,
                  cadence=0.9 if moving else 0.0, thing=True)

    def sidewalk_x(side: int) -> float:
        sign = 1 if side else -1
        inner = rh + scene.parking[side] + scene.lawn[side]
        return sign * (inner + rng.uniform(0.4, max(scene.sidewalk[side] - 0.4, 0.5)))

    def parked_rows(side: int, sign: int, z: float) -> None:
        """Rows of 2-6 cars bumper to bumper (each overlapping the next by a few centimetres, so the
        bodies meet on screen), rows a few metres apart."""
        while z < z_end - 60:
            for _ in range(int(rng.integers(2, 7))):
                if scene.cross is not None and scene.cross[0] - 8 < z < scene.cross[1] + 5:
                    break
                vehicle(sign * (rh + scene.parking[side] / 2), z, 0.0, 0.0, True,
                        float(rng.choice([-1, 1])) if side == 0 else 1.0, "car")
                car = actors[-1]
                car.z += car.data["dims"]["half_length"]  # z was the free spot behind: the car starts there
                z = car.z + car.data["dims"]["half_length"] - rng.uniform(0.02, 0.08)
            z += rng.uniform(4.0, 10.0)

    def pedestrian_groups() -> None:
        """Groups of 2-4 people on the sidewalks, one close behind the other (0.35-0.55 m apart along the
        sidewalk, a little to either side), standing or walking together: their silhouettes overlap on
        screen, one person half hiding the next."""
        for _ in range(int(rng.integers(5, 10)) + int(travel / 15)):
            side = int(rng.integers(0, 2))
            x, z = sidewalk_x(side), rng.uniform(5, travel + 45)
            vz = rng.choice([-1, 1]) * rng.uniform(0.04, 0.08) if rng.random() < 0.6 else 0.0
            for _ in range(int(rng.integers(2, 5))):
                person(x + rng.uniform(-0.2, 0.2), z, 0.0, vz)
                z += rng.uniform(0.35, 0.55)

    # parked cars along the parking strips
    for side in (0, 1):
        if scene.parking[side] <= 0:
            continue
        sign = 1 if side else -1
        z = rng.uniform(-5, 10)
        if touching:
            parked_rows(side, sign, z)
            continue
        while z < z_end - 60:
            if scene.cross is None or not (scene.cross[0] - 8 < z < scene.cross[1] + 5):
                if rng.random() < 0.7:
                    vehicle(sign * (rh + scene.parking[side] / 2), z, 0.0, 0.0, True,
                            float(rng.choice([-1, 1])) if side == 0 else 1.0,
                            "car" if rng.random() < 0.9 else "truck")
            z += rng.uniform(5.0, 9.0)
    if touching:
        pedestrian_groups()
    # traffic in the lanes: the ego lane and the lanes beside it go forward, the left half oncoming
    for lane in range(scene.lanes):
        lane_x = -rh + (lane + 0.5) * lw
        forward = lane >= scene.lanes // 2
        z = rng.uniform(8, 25)
        while z < z_end - 40:
            if rng.random() < 0.55:
                kind = "car" if rng.random() < 0.8 else ("truck" if rng.random() < 0.6 else "bus")
                if forward:
                    vz = cam.speed * rng.uniform(0.7, 1.15) if lane_x != cam.x0 else cam.speed * rng.uniform(0.9, 1.1)
                    vehicle(lane_x + rng.uniform(-0.2, 0.2), z, 0.0, vz, True, 1.0, kind)
                else:
                    vehicle(lane_x + rng.uniform(-0.2, 0.2), z + 20, 0.0, -rng.uniform(0.4, 1.1), True, -1.0, kind)
            z += rng.uniform(12, 30) if forward else rng.uniform(15, 45)
    # crossing traffic and pedestrians at the cross street, street furniture at the corners
    if scene.cross is not None:
        z0, z1 = scene.cross
        for direction in (-1, 1):
            if rng.random() < 0.7:
                speed = rng.uniform(0.3, 0.8)
                lane_z = (z0 + z1) / 2 + direction * rng.uniform(1.2, 2.2)
                x_mid = rng.uniform(-rh, rh)
                x0 = x_mid - direction * speed * duration * rng.uniform(0.3, 0.7)
                vehicle(x0, lane_z, direction * speed, 0.0, False, float(direction), "car")
        for _ in range(int(rng.integers(0, 5))):
            direction = rng.choice([-1, 1])
            speed = rng.uniform(0.05, 0.1)
            x0 = rng.uniform(-rh - 2, rh + 2) - direction * speed * duration * 0.5
            person(x0, z0 - rng.uniform(1.0, 3.5), direction * speed, 0.0)
        for side in (0, 1):
            sign = 1 if side else -1
            x = sign * (rh + scene.parking[side] + 0.5)
            state = int(rng.integers(0, 3))
            billboard(x, z0 - 1.0, 0, 0, _traffic_light_shape(state), (-0.25, 0.25), (0.0, 4.3),
                      [(POLE, (0.35, 0.37, 0.36), 0.1), (TRAFFIC_LIGHT, (0.08, 0.08, 0.08), 0.05),
                       (TRAFFIC_LIGHT, (0.15, 0.15, 0.13), 0.0), (TRAFFIC_LIGHT, (1.0, 0.15, 0.1), 0.0),
                       (TRAFFIC_LIGHT, (1.0, 0.7, 0.1), 0.0), (TRAFFIC_LIGHT, (0.2, 1.0, 0.4), 0.0)])
    # pedestrians on the sidewalks, sometimes crossing mid-block, a few cyclists
    for _ in range(int(rng.integers(4, 14)) + int(travel / 20)):
        side = int(rng.integers(0, 2))
        z = rng.uniform(3, travel + 90)
        vz = rng.choice([-1, 1]) * rng.uniform(0.04, 0.1) if rng.random() < 0.85 else 0.0
        person(sidewalk_x(side), z, 0.0, vz)
        if rng.random() < 0.3:
            person(sidewalk_x(side) + rng.uniform(-0.6, 0.6), z + rng.uniform(0.5, 1.2), 0.0, vz)
    if rng.random() < 0.5:
        direction = rng.choice([-1, 1])
        speed = rng.uniform(0.05, 0.1)
        person(-direction * (rh + 1.5) + direction * speed * rng.uniform(0, duration * 0.3),
               rng.uniform(10, 25) + cam.speed * duration * 0.5, direction * speed, 0.0)
    for _ in range(int(rng.integers(0, 3))):
        lane_x = rh - 0.8
        bike = _CAR_COLOURS[rng.integers(10)]
        rows = [(RIDER, tuple(_SKIN[rng.integers(4)]), 0.05), (RIDER, tuple(_CLOTH_COLOURS[rng.integers(10)]), 0.2),
                (RIDER, tuple(_CLOTH_COLOURS[rng.integers(10)] * 0.8), 0.2), (RIDER, (0.1, 0.1, 0.1), 0.1),
                (RIDER, (0.2, 0.2, 0.22), 0.1), (BICYCLE, tuple(bike * 0.6 + 0.05), 0.1)]
        billboard(lane_x, rng.uniform(6, 40), 0.0, cam.speed * rng.uniform(0.3, 0.8) if cam.speed else 0.2,
                  _cyclist_shape(rng.uniform(1.6, 1.8)), (-0.35, 0.35), (0.0, 1.8), rows, cadence=1.4, thing=True)
    # street furniture: lamps at the curb, trees on the lawns, signs
    for side in (0, 1):
        sign = 1 if side else -1
        curb_x = sign * (rh + scene.parking[side] + 0.45)
        z = rng.uniform(0, 25)
        spacing = rng.uniform(22, 38)
        height = rng.uniform(6.5, 9.0)
        arm = -sign * rng.uniform(0.8, 2.0)
        while z < z_end:
            head = height - 0.3
            billboard(curb_x, z, 0, 0, _pole_shape(height, arm), None, None,
                      [(POLE, (0.4, 0.42, 0.42), 0.15), (POLE, (0.75, 0.75, 0.7), 0.05)],
                      pieces=[((-0.1, 0.1), (0.0, head)), ((min(arm, 0) - 0.4, max(arm, 0) + 0.4), (head, height))])
            z += spacing
        if scene.lawn[side] > 0 or rng.random() < 0.3:
            tree_x = sign * (rh + scene.parking[side] + max(scene.lawn[side], 1.2) / 2 + 0.2)
            z = rng.uniform(0, 12)
            while z < z_end:
                crown_r = rng.uniform(1.5, 3.0)
                trunk = rng.uniform(1.8, 3.2)
                crown_h = rng.uniform(3.0, 6.0)
                shade = rng.uniform(0.8, 1.2)
                crown_low, crown_high = trunk + crown_h * (0.5 - _CROWN_REACH), trunk + crown_h * (0.5 + _CROWN_REACH)
                billboard(tree_x, z, 0, 0, _tree_shape(trunk, crown_r, crown_h, scene.noise, key()), None, None,
                          [(VEGETATION, (0.28, 0.22, 0.16), 0.3),
                           (VEGETATION, tuple(scene.palette["vegetation"] * shade), 0.9)],
                          pieces=[((-0.25, 0.25), (0.0, crown_low)),
                                  ((-2 * _CROWN_REACH * crown_r, 2 * _CROWN_REACH * crown_r), (crown_low, crown_high))])
                z += rng.uniform(7, 14)
        for _ in range(int(rng.integers(0, 4))):
            form = int(rng.integers(0, 3))
            ring = [(0.8, 0.1, 0.1), (0.8, 0.1, 0.1), (0.1, 0.25, 0.6)][form]
            inner = [(0.92, 0.92, 0.9), (0.92, 0.92, 0.9), (0.2, 0.35, 0.7)][form]
            billboard(curb_x + sign * 0.15, rng.uniform(5, z_end - 50), 0, 0, _sign_shape(form), (-0.35, 0.35),
                      (0.0, 2.7), [(POLE, (0.5, 0.5, 0.5), 0.1), (TRAFFIC_SIGN, ring, 0.05),
                                   (TRAFFIC_SIGN, inner, 0.05)])
    return actors


# --------------------------------------------------------------------------------------------------
# Rendering: a depth pass picks the visible static surface per pixel, each surface is then shaded on
# its own pixels only (flat index arrays), and the objects are z-buffered on top in their screen boxes.

_SKY_LAYER, _GROUND_LAYER, _FRONT_LAYER, _BACK_LAYER = 0, 1, 2, 3
_OBJECT_RANGE = 130.0  # metres; beyond this objects are a pixel or two and lost in the haze
_SPRITE_LEVELS = 4


@dataclass
class _Frame:
    image: np.ndarray
    labels: np.ndarray
    depth: np.ndarray  # ray parameter of the visible point (its depth along the optical axis)
    point: np.ndarray  # H×W×3 world point shown by each pixel
    velocity: np.ndarray  # H×W×2 (vx, vz) of the object it belongs to, metres per frame
    instances: np.ndarray  # H×W uint16 instance ids (0: stuff)


@dataclass
class _Hits:
    """Facade hits of one layer on the pixels where that layer is the visible static surface."""

    pixels: np.ndarray
    t: np.ndarray
    side: np.ndarray
    block: np.ndarray
    y: np.ndarray
    z: np.ndarray


class _Renderer:
    def __init__(self, scene: _Scene, height: int, width: int):
        self.scene = scene
        self.h, self.w = height, width
        cam = scene.camera
        u = (np.arange(width, dtype=np.float32) + 0.5 - cam.cx) / cam.focal
        v = -(np.arange(height, dtype=np.float32) + 0.5 - cam.cy) / cam.focal
        grid = np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1), np.float32))
        self.ray_cam = np.stack(grid, -1).reshape(-1, 3)
        self.pixel_u = np.broadcast_to(np.arange(width, dtype=np.float32) + 0.5, (height, width))
        self.pixel_v = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None] + 0.5, (height, width))
        self.hood_mask = self._hood_mask()
        self.atlas = _SpriteAtlas()

    def _hood_mask(self) -> np.ndarray | None:
        if self.scene.hood <= 0:
            return None
        x = (self.pixel_u / self.w - 0.5) * 2
        top = self.h * (1 - self.scene.hood * (1 - 0.45 * x**2))
        return self.pixel_v > top

    def render(self, t: int) -> _Frame:
        scene, cam = self.scene, self.scene.camera
        centre, rot = cam.pose(t)
        centre = tuple(float(c) for c in centre)
        rays = self.ray_cam @ rot.T.astype(np.float32)
        n = self.h * self.w
        depth = np.full(n, np.inf, np.float32)
        layer = np.zeros(n, np.int8)
        labels = np.empty(n, np.uint8)
        colour = np.empty((n, 3), np.float32)
        point = np.empty((n, 3), np.float32)
        velocity = np.zeros((n, 2), np.float32)
        instances = np.zeros(n, np.uint16)

        with np.errstate(divide="ignore", invalid="ignore"):
            ground = np.flatnonzero(rays[:, 1] < -1e-4)
            t_ground = -centre[1] / rays[ground, 1]
            keep = t_ground < _FAR
            depth[ground[keep]] = t_ground[keep]
            layer[ground[keep]] = _GROUND_LAYER
            front = self._facade_depth(scene.front, scene.front_x, rays, centre, depth, layer, _FRONT_LAYER)
            back = self._facade_depth(scene.back, scene.back_x, rays, centre, depth, layer, _BACK_LAYER)

            buffers = (labels, colour, point)
            self._shade_sky(np.flatnonzero(layer == _SKY_LAYER), rays, centre, buffers)
            self._shade_ground(np.flatnonzero(layer == _GROUND_LAYER), rays, centre, depth, buffers)
            for hits, blocks, plane_x, name in ((front, scene.front, scene.front_x, 0), (back, scene.back, scene.back_x, 1)):
                self._shade_facade(hits, blocks, plane_x, name, buffers)

            cx, cz = centre[0], centre[2]
            faces = [f for a in scene.actors if -15 < a.position(t)[1] - cz < _OBJECT_RANGE
                     for f in a.faces(a, t, cx, cz)]
            self._draw_faces(faces, centre, rot, rays, depth, labels, colour, point, velocity, instances)

        if scene.appearance is not None:
            colour = _repaint(scene.appearance, scene.noise, labels, colour, point, velocity, t)
        h, w = self.h, self.w
        depth, labels, colour, point, velocity, instances = (
            a.reshape((h, w) + a.shape[1:]) for a in (depth, labels, colour, point, velocity, instances))
        image = self._finish(colour, depth)
        if self.hood_mask is not None:
            labels[self.hood_mask] = IGNORE
            instances[self.hood_mask] = 0
            image[self.hood_mask] = self._hood_colour()[self.hood_mask]
            point[self.hood_mask] = np.nan  # rides with the camera: zero flow
        return _Frame(image, labels, depth, point, velocity, instances)

    def backward_flow(self, frame: _Frame, previous: _Frame, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Where each pixel's point was one frame earlier (the backward flow at frame t, pixels), and
        whether it was visible there: its depth then matches the previous frame's depth buffer."""
        cam = self.scene.camera
        centre, rot = cam.pose(t - 1)
        prev = frame.point.copy()
        prev[..., 0] -= frame.velocity[..., 0]
        prev[..., 2] -= frame.velocity[..., 1]
        local = (prev - centre.astype(np.float32)) @ rot.astype(np.float32)
        z = np.maximum(local[..., 2], 1e-3)
        u = cam.cx + cam.focal * local[..., 0] / z
        v = cam.cy - cam.focal * local[..., 1] / z
        flow = np.nan_to_num(np.stack([u - self.pixel_u, v - self.pixel_v], -1), nan=0.0).astype(np.float32)

        col = np.floor(self.pixel_u + flow[..., 0]).astype(np.int64)
        row = np.floor(self.pixel_v + flow[..., 1]).astype(np.int64)
        inside = (col >= 0) & (col < self.w) & (row >= 0) & (row < self.h)
        seen = previous.depth[np.clip(row, 0, self.h - 1), np.clip(col, 0, self.w - 1)]
        far = (seen >= _FAR) & (z >= _FAR)
        visible = np.abs(seen - z) < 0.05 * z + 0.1
        conf = inside & (visible | far | np.isnan(local[..., 2]))
        return flow, conf.astype(np.float32)

    # --- static surfaces ---

    def _facade_depth(self, blocks: _Blocks, plane_x, rays, centre, depth, layer, layer_id) -> _Hits:
        """Intersect every ray with this layer's facade plane on its side; claim pixels it is nearest on."""
        dx = rays[:, 0]
        side = (dx > 0).astype(np.int64)
        plane = np.where(side == 1, plane_x[1], -plane_x[0]).astype(np.float32)
        t = (plane - centre[0]) / dx
        y = centre[1] + t * rays[:, 1]
        pixels = np.flatnonzero((t > 0) & (y >= 0) & (t < depth))
        t, y, side = t[pixels], y[pixels], side[pixels]
        z = centre[2] + t * rays[pixels, 2]
        block = blocks.lookup(side, z)
        kind = blocks.kind[block]
        height = blocks.height[block]
        wobble = _sample_noise(self.scene.noise, z * 1.5 + 30, np.full_like(z, 3.0 + 10 * layer_id))[:, 1]
        height = np.where(kind == 2, height * (0.8 + 0.5 * wobble), height)
        ok = (kind > 0) & (y < height)
        hits = _Hits(pixels[ok], t[ok].astype(np.float32), side[ok], block[ok], y[ok].astype(np.float32),
                     z[ok].astype(np.float32))
        depth[hits.pixels] = hits.t
        layer[hits.pixels] = layer_id
        return hits

    def _shade_sky(self, pixels, rays, centre, buffers) -> None:
        labels, colour, point = buffers
        pal, light = self.scene.palette, self.scene.light
        r = rays[pixels]
        elevation = np.clip(r[:, 1] / np.linalg.norm(r, axis=-1), 0, 1)
        grad = np.sqrt(np.clip(elevation * 2.2, 0, 1))[:, None]
        rgb = pal["sky_horizon"] * (1 - grad) + pal["sky_top"] * grad
        if light["clouds"] > 0:
            lift = np.maximum(r[:, 1], 0.02)
            n = _sample_noise(self.scene.noise, r[:, 0] / lift * 6 + 40, r[:, 2] / lift * 6)
            cloud = np.clip((n[:, 2] * 0.7 + n[:, 1] * 0.3 - 0.62 + 0.25 * light["clouds"]) * 4.0, 0, 1)
            cloud = (cloud * (1 - np.exp(-elevation * 25)))[:, None]
            rgb = rgb * (1 - cloud) + np.float32(0.93) * (1 - 0.25 * cloud * n[:, :1]) * cloud
        labels[pixels] = SKY
        colour[pixels] = rgb
        point[pixels] = np.asarray(centre, np.float32) + r * np.float32(_SKY_DISTANCE)

    def _shade_ground(self, pixels, rays, centre, depth, buffers) -> None:
        labels, colour, point = buffers
        scene, pal, noise = self.scene, self.scene.palette, self.scene.noise
        t = depth[pixels]
        x = (centre[0] + t * rays[pixels, 0]).astype(np.float32)
        z = (centre[2] + t * rays[pixels, 2]).astype(np.float32)
        foot = t / scene.camera.focal  # metres per pixel across the view
        foot_z = foot * np.maximum(t, 1.0) / max(centre[1], 0.5)  # foreshortened along the road
        ax = np.abs(x)
        right = x > 0
        rh = scene.road_half
        park = np.where(right, scene.parking[1], scene.parking[0])
        lawn = np.where(right, scene.lawn[1], scene.lawn[0])
        front = np.where(right, scene.front_x[1], scene.front_x[0])
        road_edge = rh + park
        if scene.cross is None:
            in_cross = near_cross = np.zeros(t.shape, bool)
        else:
            in_cross = (z > scene.cross[0]) & (z < scene.cross[1])
            near_cross = (z > scene.cross[0] - 3.0) & (z < scene.cross[1] + 3.0) & (ax > road_edge)

        lab = np.full(t.shape, TERRAIN, np.uint8)
        lab[ax < front] = SIDEWALK
        lab[(ax >= road_edge) & (ax < road_edge + lawn)] = TERRAIN
        lab[ax < road_edge] = ROAD
        lab[near_cross & ~in_cross] = SIDEWALK
        lab[in_cross] = ROAD

        n = _sample_noise(noise, x * 20.0, z * 20.0)
        coarse = _sample_noise(noise, x * 0.9 + 100, z * 0.9)
        grain = (np.clip(1.0 - foot / 0.06, 0, 1)[:, None] * (n[:, :1] - 0.5))
        rgb = np.empty((t.size, 3), np.float32)

        road = np.flatnonzero(lab == ROAD)
        xr = x[road]
        lane_pos = np.mod(xr + rh, scene.lane_width) / scene.lane_width
        tracks = np.exp(-((np.abs(lane_pos - 0.5) - 0.27) / 0.07) ** 2) * (ax[road] < rh)
        asphalt = pal["asphalt"] * (0.85 + 0.3 * coarse[road, 2:3]) * (1 + 0.25 * grain[road])
        asphalt *= (1 - 0.12 * tracks)[:, None]
        marking = self._lane_markings(xr, z[road], foot[road], foot_z[road], n[road, 1])
        rgb[road] = asphalt + (pal["marking"] - asphalt) * marking[:, None]

        walk = np.flatnonzero(lab == SIDEWALK)
        tile = pal["tile"]
        joints = np.maximum(_line_coverage(np.mod(x[walk], tile), 0.02, foot[walk], tile),
                            _line_coverage(np.mod(z[walk], tile), 0.02, foot_z[walk], tile))
        rgb[walk] = pal["sidewalk"] * (0.9 + 0.2 * coarse[walk, 1:2]) * (1 + 0.15 * grain[walk]) * \
            (1 - 0.25 * joints)[:, None]
        grass = np.flatnonzero(lab == TERRAIN)
        rgb[grass] = pal["terrain"] * (0.75 + 0.5 * coarse[grass, 1:2]) * (1 + 0.5 * grain[grass])
        curb = np.flatnonzero((ax >= road_edge) & (ax < road_edge + 0.25) & (lab != ROAD))
        rgb[curb] = pal["curb"] * (0.95 + 0.1 * n[curb, :1])
        lab[curb] = SIDEWALK
        rgb *= self._ground_shadow(x, z)[:, None]

        labels[pixels] = lab
        colour[pixels] = rgb
        point[pixels] = np.stack([x, np.zeros_like(x), z], -1)

    def _lane_markings(self, x, z, foot, foot_z, wear) -> np.ndarray:
        """Coverage of painted lines: dashed lane lines, edge lines, a zebra crossing before the cross street."""
        scene, pal = self.scene, self.scene.palette
        rh, lw = scene.road_half, scene.lane_width
        width = 0.13
        lane_coord = x + rh
        nearest = np.clip(np.round(lane_coord / lw), 1, scene.lanes - 1)
        line = _line_coverage(np.abs(lane_coord - nearest * lw), width, foot, None)
        along = np.mod(z, pal["lane_dash"] + pal["lane_gap"])
        fz = np.maximum(foot_z, 1e-3)
        dash = np.clip((pal["lane_dash"] - along) / fz + 0.5, 0, 1) * np.clip(along / fz + 0.5, 0, 1)
        solid_centre = (np.abs(nearest - scene.lanes / 2) < 0.1) & (scene.lanes > 2)
        cover = line * np.where(solid_centre, 1.0, dash)
        edge = _line_coverage(np.abs(np.abs(x) - rh + 0.25), width, foot, None)
        cover = np.maximum(cover, edge * (np.abs(x) < rh))
        if scene.cross is not None:
            zebra = np.abs(z - (scene.cross[0] - 3.0)) < 1.5
            stripes = _line_coverage(np.abs(np.mod(x, 1.0) - 0.5), 0.5, foot, None)
            cover = np.maximum(cover, stripes * zebra * (np.abs(x) < rh + 0.2))
            cover = np.where((z > scene.cross[0]) & (z < scene.cross[1]), 0.0, cover)
        return (cover * (0.75 + 0.5 * wear)).clip(0, 1).astype(np.float32)

    def _ground_shadow(self, x, z) -> np.ndarray:
        """The row of buildings facing away from the sun throws its shadow across the street."""
        scene, light = self.scene, self.scene.light
        if light["sun"] <= 0:
            return np.ones(x.shape, np.float32)
        caster = 1 - light["sun_side"]
        block = scene.front.lookup(np.full(x.shape, caster, np.int64), z)
        height = scene.front.height[block]
        dist = scene.front_x[caster] - (x if caster == 1 else -x)
        shadow = (dist < height * light["shadow_reach"]) & (dist > -0.5)
        return np.where(shadow, 1 - 0.45 * light["sun"], 1.0).astype(np.float32)

    def _shade_facade(self, hits: _Hits, blocks: _Blocks, plane_x, layer: int, buffers) -> None:
        labels, colour, point = buffers
        scene, light, noise = self.scene, self.scene.light, self.scene.noise
        side, block, y, z = hits.side, hits.block, hits.y, hits.z
        kind = blocks.kind[block]
        foot = hits.t / scene.camera.focal
        n = _sample_noise(noise, z * 6 + 50 * layer, y * 6)
        fine = 0.5 + (n[:, :1] - 0.5) * np.clip(1.5 - foot / 0.12, 0, 1)[:, None]  # fades before it aliases
        weather = _sample_noise(noise, z * 0.5, y * 0.5)[:, 2:3]
        rgb = blocks.colour[block] * (0.9 + 0.2 * weather) * (0.94 + 0.12 * fine)

        # windows: a grid in facade coordinates, anti-aliased, brighter towards the top (sky reflection)
        bld = np.flatnonzero(kind == 1)
        b, yb, zb, fb = block[bld], y[bld], z[bld], foot[bld]
        pitch, floor, frac, height = blocks.window_w[b], blocks.floor_h[b], blocks.window_frac[b], blocks.height[b]
        wx = _line_coverage(np.abs(np.mod(zb, pitch) - pitch / 2), frac[:, 0] * pitch, fb, None)
        floor_y = np.mod(yb, floor)
        wy = _line_coverage(np.abs(floor_y - floor * 0.55), frac[:, 1] * floor, fb, None)
        shop = np.flatnonzero(blocks.shop[b] & (yb < floor))
        wy[shop] = _line_coverage(np.abs(yb[shop] - floor[shop] * 0.45), 0.6 * floor[shop], fb[shop], None)
        wx[shop] = _line_coverage(np.abs(np.mod(zb[shop], pitch[shop] * 2) - pitch[shop]), 1.6 * pitch[shop],
                                  fb[shop], None)
        window = (wx * wy * (yb < height - 1.0))[:, None]
        glass = blocks.glass[b] * (1 + 0.8 * np.clip(floor_y / floor - 0.5, 0, 1))[:, None]
        roof = np.where(yb > height - 0.5, np.float32(0.75), np.float32(1.0))[:, None]
        rgb[bld] = (rgb[bld] * (1 - window) + glass * window) * roof

        veg = np.flatnonzero(kind == 2)
        leaves = 0.35 * n[veg, 1:2] + 0.65 * fine[veg]
        rgb[veg] = scene.palette["vegetation"] * (0.55 + 0.9 * leaves) * (0.8 + 0.4 * n[veg, 2:3])
        fence = np.flatnonzero(kind == 4)
        slats = 0.7 + 0.3 * _line_coverage(np.abs(np.mod(z[fence], 0.15) - 0.075), 0.08, foot[fence], None)
        rgb[fence] *= slats[:, None]
        shade = np.where(side == light["sun_side"], 1.0, 1.0 - 0.4 * light["sun"]).astype(np.float32)
        shade *= 0.85 if layer else 1.0
        labels[hits.pixels] = _FACADE_LABELS[kind]
        colour[hits.pixels] = rgb * shade[:, None]
        plane = np.where(side == 1, plane_x[1], -plane_x[0]).astype(np.float32)
        point[hits.pixels] = np.stack([plane, y, z], -1)

    # --- objects ---

    def _draw_faces(self, faces: list[_Face], centre, rot, rays, depth, labels, colour, point, velocity,
                    instances) -> None:
        """Z-buffer all object faces of a frame at once: every pixel of every face's screen box is a
        candidate; candidates behind the static scene, outside the face or on an empty texel drop out,
        and the nearest remaining candidate of each pixel wins."""
        boxes, kept, nearest = [], [], []
        for face in sorted(faces, key=lambda f: f.axis, reverse=True):  # camera-facing planes first
            box = self._screen_box(face, centre, rot)
            if box is not None:
                boxes.append(box[:4])
                nearest.append(box[4])
                kept.append(face)
        if not kept:
            return
        box = np.array(boxes, np.int32)
        box_w = box[:, 3] - box[:, 2]
        sizes = (box[:, 1] - box[:, 0]) * box_w
        fid = np.repeat(np.arange(len(kept), dtype=np.int32), sizes)
        offset = np.arange(fid.size, dtype=np.int32) - np.repeat(np.cumsum(sizes, dtype=np.int32) - sizes, sizes)
        row, col = np.divmod(offset, box_w[fid])
        pix = (box[fid, 0] + row) * self.w + box[fid, 2] + col

        axis_z = np.array([f.axis == 2 for f in kept])
        plane = np.array([f.plane for f in kept], np.float32)
        cx, cy, cz = centre
        r = rays[pix]
        split = int(sizes[axis_z].sum())
        t = np.empty(pix.size, np.float32)
        t[:split] = (plane[fid[:split]] - cz) / r[:split, 2]
        t[split:] = (plane[fid[split:]] - cx) / r[split:, 0]
        in_front = (t > 0) & (t < depth[pix])

        sprites = [None] * len(kept)
        for i in np.unique(fid[in_front]).tolist():
            sprites[i] = self._sprite(kept[i].look, nearest[i])
        table = np.array([
            (f.origin, f.a_range[0], f.a_range[1], f.look.y_range[0], f.look.y_range[1], s.a0, s.y0, s.scale)
            if s is not None else (0.0,) * 8 for f, s in zip(kept, sprites)], np.float32)
        layout = np.array([(s.offset, s.na, s.ny) if s is not None else (0, 1, 1) for s in sprites], np.int64)
        along = np.where(axis_z[fid], cx + t * r[:, 0], cz + t * r[:, 2])
        y = cy + t * r[:, 1]
        a = along - table[fid, 0]
        keep = np.flatnonzero(in_front & (a >= table[fid, 1]) & (a < table[fid, 2]) & (y >= table[fid, 3])
                              & (y < table[fid, 4]))
        fid, pix, t, along, y, a = fid[keep], pix[keep], t[keep], along[keep], y[keep], a[keep]
        ia = np.clip(((a - table[fid, 5]) * table[fid, 7]).astype(np.int64), 0, layout[fid, 1] - 1)
        iy = np.clip(((y - table[fid, 6]) * table[fid, 7]).astype(np.int64), 0, layout[fid, 2] - 1)
        texel = layout[fid, 0] + iy * layout[fid, 1] + ia
        lab = self.atlas.labels[texel]
        keep = np.flatnonzero(lab != IGNORE)
        fid, pix, t, along, y, texel, lab = fid[keep], pix[keep], t[keep], along[keep], y[keep], texel[keep], lab[keep]

        order = np.lexsort((t, pix))
        first = np.ones(order.size, bool)
        first[1:] = pix[order[1:]] != pix[order[:-1]]
        win = order[first]
        fid, pix, t, along, y = fid[win], pix[win], t[win], along[win], y[win]
        shade = np.array([f.shade for f in kept], np.float32) / np.float32(_ATLAS_COLOUR_SCALE)
        depth[pix] = t
        labels[pix] = lab[win]
        colour[pix] = self.atlas.colour[texel[win]] * shade[fid, None]
        flat = plane[fid]
        point[pix] = np.where(axis_z[fid, None], np.stack([along, y, flat], -1), np.stack([flat, y, along], -1))
        velocity[pix] = np.array([f.velocity for f in kept], np.float32)[fid]
        instances[pix] = np.array([f.instance for f in kept], np.uint16)[fid]

    def _sprite(self, look: _Look, distance: float) -> _Sprite:
        """The look drawn on a texel grid of at most a pixel at `distance` (cached per look and level).

        Levels of detail double the texel size, so an object seen only far away never pays for the
        grid of a close pass; the texture lives in object coordinates, so every level shows the same surface.
        """
        (a0, a1), (y0, y1) = look.a_range, look.y_range
        finest = max(max(a1 - a0, y1 - y0) / 192, 2.0 / self.scene.camera.focal)
        wanted = distance / self.scene.camera.focal
        level = min(int(math.log2(max(wanted / finest, 1.0))), _SPRITE_LEVELS - 1)
        key = (*look.key, level)
        sprite = self.atlas.sprites.get(key)
        if sprite is not None:
            return sprite
        texel = finest * 2**level
        a = a0 + (np.arange(math.ceil((a1 - a0) / texel), dtype=np.float32) + 0.5) * texel
        y = y0 + (np.arange(math.ceil((y1 - y0) / texel), dtype=np.float32) + 0.5) * texel
        a, y = np.meshgrid(a, y)
        part = look.shape(a, y)
        n = _sample_noise_smooth(self.scene.noise, a * 12 + look.tex_key[0], y * 12 + look.tex_key[1])
        grain = 1 + look.texture[part][..., None] * (n[..., :1] * 0.7 + n[..., 1:2] * 0.3 - 0.5) * 2
        rgb = look.colours[part] * grain * (0.93 + 0.07 * np.clip(y / 1.5, 0, 1))[..., None]
        return self.atlas.add(key, look.labels[part], rgb, a0, y0, 1.0 / texel)

    def _screen_box(self, face: _Face, centre, rot) -> tuple[int, int, int, int] | None:
        """(v0, v1, u0, u1, nearest depth): pixel rectangle around the face's projected corners and how
        close its nearest corner is; None when off screen or too close."""
        (a0, a1), (y0, y1) = face.a_range, face.look.y_range
        cam = self.scene.camera
        (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = rot.tolist()
        us, vs, depths = [], [], []
        for a in (a0, a1):
            for y in (y0, y1):
                if face.axis == 2:
                    px, py, pz = face.origin + a - centre[0], y - centre[1], face.plane - centre[2]
                else:
                    px, py, pz = face.plane - centre[0], y - centre[1], face.origin + a - centre[2]
                lz = r02 * px + r12 * py + r22 * pz
                if lz < 0.3:
                    return None
                depths.append(lz)
                us.append(cam.cx + cam.focal * (r00 * px + r10 * py + r20 * pz) / lz)
                vs.append(cam.cy - cam.focal * (r01 * px + r11 * py + r21 * pz) / lz)
        u0, u1 = max(math.floor(min(us)) - 1, 0), min(math.ceil(max(us)) + 1, self.w)
        v0, v1 = max(math.floor(min(vs)) - 1, 0), min(math.ceil(max(vs)) + 1, self.h)
        if u0 >= u1 or v0 >= v1:
            return None
        return v0, v1, u0, u1, min(depths)

    # --- camera ---

    def _finish(self, colour: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Haze with distance, then the camera: exposure, white balance, saturation, gamma."""
        light, pal = self.scene.light, self.scene.palette
        haze = 1 - np.exp(np.minimum(depth, _FAR) * np.float32(-1.0 / light["haze"]))
        haze[np.isinf(depth)] = 0.0  # the sky has its own horizon colour
        colour = colour + (pal["sky_horizon"] - colour) * haze[..., None]
        gain = light["exposure"] * light["tint"] * np.array([1 + light["warm"], 1.0, 1 - light["warm"]], np.float32)
        sat = light["saturation"]
        saturate = sat * np.eye(3) + (1 - sat) / 3  # grey + (c - grey) * sat, as one matrix
        camera = (255 * gain[:, None] * saturate).astype(np.float32)
        return cv2.LUT(np.clip(colour @ camera + 0.5, 0, 255).astype(np.uint8), _GAMMA)

    def _hood_colour(self) -> np.ndarray:
        pal = self.scene.palette
        fade = np.clip((self.pixel_v - self.h * (1 - self.scene.hood)) / (self.h * self.scene.hood + 1e-6), 0, 1)
        rgb = pal["sky_horizon"] * 0.35 * (1 - fade[..., None]) + np.float32(0.05)
        return (np.clip(rgb * self.scene.light["exposure"], 0, 1) * 255).astype(np.uint8)


_GAMMA = np.clip((np.arange(256) / 255.0) ** 0.9 * 255 + 0.5, 0, 255).astype(np.uint8)
_FACADE_LABELS = np.array([BUILDING, BUILDING, VEGETATION, WALL, FENCE], np.uint8)


def _line_coverage(dist, width, foot, period) -> np.ndarray:
    """Anti-aliased coverage of a painted line of `width` at distance `dist` (a joint grid when `period` is set)."""
    if period is not None:
        dist = np.minimum(dist, period - dist)
    foot = np.maximum(foot, 1e-4)
    return np.clip((width / 2 - dist) / foot + 0.5, 0, 1) * np.clip(width / foot, 0, 1)
