"""svsgan_core: the SVS-GAN method (Seyam et al. 2024) in PyTorch, with no ROS imports."""
import os as _os

# Before torch loads OpenMP: idle worker threads sleep instead of spinning. On a 2-core machine with
# anything else running (DDS threads, CARLA, a second camera), spinning made the tiny model ~15x
# slower (3.9 s vs 0.23 s a frame). Every svsgan entry point imports this package before torch;
# export OMP_WAIT_POLICY to override.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
