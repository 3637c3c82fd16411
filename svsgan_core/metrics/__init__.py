"""Evaluation metrics of the paper's Table 1, computed offline from local weight files.

fid (Inception-v3 FID), fvd (FVD_i3d and FVD_cd), miou (segmenter mIoU), temporal (flow warping error,
no weights), boundary (contrast across the seams of touching same-class objects, no weights). Architectures written for svsgan: inception (FID Inception-v3), i3d (InceptionI3d),
videomae (VideoMAE-v2 ViT). weights.py says where each weight file comes from. Import the submodule
you need: each pulls in only what it uses.
"""

# the metric names `svsgan eval --metrics` takes, here (no torch) so that `svsgan eval --help` stays fast
METRICS = ("fid", "fvd_i3d", "fvd_cd", "miou", "temporal", "fps", "l1", "psnr", "sharpness", "carry", "boundary")
PIXEL_METRICS = ("l1", "psnr", "sharpness")  # per frame against the real frame, kept per frame number
# carry: the probe costs three generator passes per frame; boundary: needs data with instance maps
DEFAULT_METRICS = tuple(m for m in METRICS if m not in ("carry", "boundary"))
