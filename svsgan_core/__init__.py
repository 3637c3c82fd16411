"""svsgan_core: the SVS-GAN method (Seyam et al. 2024) in PyTorch, with no ROS imports."""
import os as _os

# Before torch loads OpenMP: idle worker threads sleep instead of spinning. On a 2-core machine with
# anything else running (DDS threads, CARLA, a second camera), spinning made the tiny model ~15x
# slower (3.9 s vs 0.23 s a frame). Every svsgan entry point imports this package before torch;
# export OMP_WAIT_POLICY to override.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Intra-op CPU threads per process in the node, convert, eval and demo (`--threads`, the node's
# num_threads; runtime.backend.set_threads applies it). One: the node, a convert worker and the jobs
# around them (DDS, CARLA, a second camera, another user's training) share the cores, and a
# second thread that waits for a busy core made one step 60x slower (4,063 vs 68 ms on 2 busy
# cores). On a machine of its own give more (0: one per core).
DEFAULT_THREADS = 1

__version__ = "0.1.0"
