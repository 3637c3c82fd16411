"""Drive a CARLA server directly: ego camera -> SVS-GAN -> ROS 2 topics or a bag.

Uses the vehicle with role_name 'hero' (or spawns one on autopilot), attaches a semantic-segmentation
camera (and optionally an RGB camera whose image starts each sequence), and publishes or records one
generated frame per camera frame, stamped with simulator time. On exit (also Ctrl-C, SIGTERM and
errors) the world's settings are restored and everything this command spawned is destroyed.

Examples:
  svsgan carla --checkpoint ckpt --output ros                      # synchronous, 20 Hz simulator steps
  svsgan carla --checkpoint ckpt --output bag --bag drive1 --frames 600 --reference-rgb
  svsgan carla --checkpoint ckpt --output ros --instance-camera   # object ids beside the labels
  svsgan carla --mode passive --checkpoint ckpt --output ros       # another client ticks the world
  svsgan carla --output none --native-ros                          # only drive; CARLA (--ros2) publishes
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from ..errors import InputError
from . import add_threads_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="CARLA server host (default: %(default)s)")
    s.add_argument("--port", type=int, default=2000, help="CARLA server RPC port (default: %(default)s)")
    s.add_argument("--timeout", type=float, default=10.0,
                   help="seconds any call or sensor frame may take before the server counts as lost (default: %(default)s)")
    s.add_argument("--mode", choices=("sync", "passive"), default="sync",
                   help="sync: this client ticks the world with a fixed step and restores its settings on exit; "
                        "passive: another client ticks, frames are processed newest-first (default: %(default)s)")
    s.add_argument("--fixed-delta", type=float, default=0.05, metavar="SECONDS",
                   help="simulation step in sync mode (default: %(default)s)")
    s.add_argument("--carla-version", default=None,
                   help="tag numbering of the semantic camera (default: the server's version; 'legacy' for <= 0.9.13)")

    v = p.add_argument_group("ego vehicle")
    v.add_argument("--role-name", default="hero", help="role_name of the vehicle to use or spawn (default: %(default)s)")
    v.add_argument("--no-spawn", action="store_true", help="fail instead of spawning when no such vehicle exists")
    v.add_argument("--vehicle-filter", default="vehicle.*", help="blueprint filter for a spawned vehicle (default: %(default)s)")
    v.add_argument("--tm-port", type=int, default=8000, help="Traffic Manager port for the autopilot (default: %(default)s)")
    v.add_argument("--seed", type=int, default=None, help="seed for the vehicle blueprint and spawn point choice")

    c = p.add_argument_group("camera")
    c.add_argument("--width", type=int, default=1024, help="image width (default: %(default)s)")
    c.add_argument("--height", type=int, default=512, help="image height (default: %(default)s)")
    c.add_argument("--fov", type=float, default=90.0, help="horizontal field of view in degrees (default: %(default)s)")
    c.add_argument("--pose", default="1.5,0,2.4,0,0,0", metavar="X,Y,Z[,ROLL,PITCH,YAW]",
                   help="camera pose on the vehicle, metres and degrees, CARLA axes (default: %(default)s)")
    c.add_argument("--reference-rgb", action="store_true",
                   help="attach an RGB camera too; its image is the first frame of every sequence")
    c.add_argument("--instance-camera", action=argparse.BooleanOptionalAction, default=False,
                   help="attach CARLA's instance-segmentation camera at the semantic camera's pose, resolution and "
                        "tick: its object ids go to the generator with each frame and out on --instances-topic "
                        "(bgra8: tag in R, object id in G + 256 B); with --native-ros CARLA publishes it as "
                        "/carla/<role-name>/instance_segmentation/image (default: off)")
    c.add_argument("--native-ros", action="store_true",
                   help="set ros_name and enable CARLA's own ROS 2 publishing on the cameras (server started with --ros2); "
                        "topics /carla/<role-name>/semantic_segmentation/image, /carla/<role-name>/rgb/image and "
                        "/carla/<role-name>/instance_segmentation/image")

    g = p.add_argument_group("generator")
    g.add_argument("--checkpoint", help="checkpoint folder (needed unless --output none)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cuda or cpu (default: %(default)s)")
    add_threads_argument(g)
    g.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="(default: %(default)s)")
    g.add_argument("--reset-gap", type=float, default=1.0, metavar="SECONDS",
                   help="a forward stamp jump larger than this starts a new sequence (default: %(default)s)")

    o = p.add_argument_group("output")
    o.add_argument("--output", choices=("ros", "bag", "none"), default="ros", help="(default: %(default)s)")
    o.add_argument("--bag", help="bag folder to write (with --output bag)")
    o.add_argument("--format", dest="storage", choices=("mcap", "db3"), default="mcap",
                   help="bag storage, as `svsgan convert --format` (default: %(default)s)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing bag")
    o.add_argument("--image-topic", default=None, help="generated rgb8 frames (default: /svsgan/<role-name>/generated/image)")
    o.add_argument("--labels-topic", default=None, help="label images (default: /svsgan/<role-name>/semantic/image)")
    o.add_argument("--instances-topic", default=None,
                   help="the instance camera's raw bgra8 images, with --instance-camera "
                        "(default: /svsgan/<role-name>/instance/image)")
    o.add_argument("--labels-encoding", choices=("mono8", "bgra8", "none"), default="mono8",
                   help="mono8: CARLA tags; bgra8: CARLA's raw image, tag in red; none: do not output labels (default: %(default)s)")
    o.add_argument("--frame-id", default=None, help="header frame_id (default: <role-name>/svsgan_camera)")
    o.add_argument("--clock", action=argparse.BooleanOptionalAction, default=None,
                   help="publish/record /clock from simulator time (default: on in sync mode, off in passive mode)")
    o.add_argument("--frames", type=int, default=0, help="stop after this many frames (default: 0 = until Ctrl-C)")
    o.add_argument("-v", "--verbose", action="store_true", help="log every new sequence and setup step")


def _config(args: argparse.Namespace):
    from ..io.carla_client import CameraSpec, CarlaConfig

    camera = CameraSpec(width=args.width, height=args.height, fov=args.fov, **CameraSpec.parse_pose(args.pose))
    return CarlaConfig(
        host=args.host, port=args.port, timeout=args.timeout, role_name=args.role_name, spawn=not args.no_spawn,
        vehicle_filter=args.vehicle_filter, tm_port=args.tm_port, seed=args.seed, camera=camera,
        reference_rgb=args.reference_rgb, instance_camera=args.instance_camera, mode=args.mode,
        fixed_delta_seconds=args.fixed_delta,
        native_ros=args.native_ros, listen=args.output != "none", carla_version=args.carla_version,
    )


def _topics(args: argparse.Namespace):
    from ..io.carla_client import Topics

    role = args.role_name
    return Topics(
        image=args.image_topic or f"/svsgan/{role}/generated/image",
        labels=args.labels_topic or f"/svsgan/{role}/semantic/image",
        labels_encoding=args.labels_encoding,
        frame_id=args.frame_id or f"{role}/svsgan_camera",
        clock=args.clock if args.clock is not None else args.mode == "sync",
        instances=(args.instances_topic or f"/svsgan/{role}/instance/image") if args.instance_camera else "",
    )


def _sigterm_as_interrupt():
    """`docker stop` sends SIGTERM: end like Ctrl-C, so the world's settings are restored.

    Returns the handler to put back (None outside the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    from ..io.carla_client import BagSink, CarlaSession, RosSink, drive

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="svsgan carla: %(message)s")
    if args.frames < 0:
        raise InputError(f"--frames must be >= 0, got {args.frames}")
    if args.output != "none" and not args.checkpoint:
        raise InputError("--checkpoint is needed to generate frames (or use --output none to only drive the world)")
    if args.output == "bag" and not args.bag:
        raise InputError("--output bag needs --bag PATH")
    config, topics = _config(args), _topics(args)

    synthesizer = None
    if args.output != "none":
        from ..runtime.backend import set_threads
        from ..runtime.synthesizer import VideoSynthesizer

        set_threads(args.threads)  # CARLA's client and server share the cores
        synthesizer = VideoSynthesizer.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    previous_sigterm = _sigterm_as_interrupt()

    def progress(frame, stats) -> None:
        if stats.frames % 100 == 0:
            print(f"svsgan carla: {stats.frames} frames, t={frame.stamp_ns / 1e9:.2f} s sim, {stats.fps:.1f} frames/s",
                  file=sys.stderr)

    sink = None
    stats = None
    try:
        with CarlaSession(config) as session:
            if args.output == "ros":
                sink = RosSink(topics)
            elif args.output == "bag":
                sink = BagSink(args.bag, topics, storage=args.storage, overwrite=args.overwrite)
            stats = drive(session, synthesizer, sink, frames=args.frames, reset_gap_s=args.reset_gap, on_frame=progress)
    finally:
        if sink is not None:
            sink.close()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    print(f"svsgan carla: {stats.frames} frames in {stats.sequences} sequence(s), {stats.fps:.1f} frames/s",
          file=sys.stderr)
    return 0
