"""What the ROS node adds: latency and throughput against calling VideoSynthesizer.step directly.

    python -m svs_gan_ros.bench --json        (or scripts/bench_node.py)

One run measures, in alternating rounds on the same machine (so outside load hits both alike):
  direct      VideoSynthesizer.step on each label map, in this process;
  latency     one sensor_msgs/Image published, wait for the node's output, next (lossless mode);
  throughput  every frame published at once, time until the last output arrives.
The node runs as its own process (`python -m svs_gan_ros.generator_node`) with the same checkpoint,
device and thread count. Messages are built before timing: building them is the producer's cost.

`svsgan bench` may import `measure_node_overhead` or run this module with --json as a subprocess,
which keeps rclpy out of its own process. rclpy is imported only when a measurement runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def label_sequence(n: int, height: int, width: int, num_classes: int = 19):
    """A street-like scene in Cityscapes trainIds with a car moving right, one map per frame."""
    import numpy as np

    maps = []
    for k in range(n):
        ids = np.zeros((height, width), np.uint8)
        ids[: height * 3 // 10] = 10 % num_classes
        ids[height * 3 // 10 : height // 2] = 2 % num_classes
        x = (k * width // 40) % (width // 2)
        ids[height // 2 : height * 3 // 4, x : x + width // 4] = 13 % num_classes
        maps.append(ids)
    return maps


def _node_command(params_file: str) -> list[str]:
    return [
        sys.executable,
        '-m',
        'svs_gan_ros.generator_node',
        '--ros-args',
        '--params-file',
        params_file,
    ]


def _env(domain_id: int) -> dict:
    import svs_gan_ros

    import svsgan_core

    paths = [
        str(Path(svs_gan_ros.__file__).resolve().parents[1]),
        str(Path(svsgan_core.__file__).resolve().parents[1]),
    ]
    env = dict(
        os.environ,
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        PYTHONUNBUFFERED='1',
        RCUTILS_COLORIZED_OUTPUT='0',
    )
    env['PYTHONPATH'] = os.pathsep.join(
        paths + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else [])
    )
    return env


def measure_node_overhead(
    frames: int = 15,
    width: int = 512,
    height: int = 256,
    preset: str = 'tiny',
    checkpoint: str | None = None,
    device: str = 'cpu',
    threads: int = 1,
    rounds: int = 4,
    warmup: int = 2,
    domain_id: int | None = None,
    timeout_s: float = 600.0,
    log=None,
) -> dict:
    """Node vs direct synthesizer at width x height input; returns medians, rates and overheads.

    Without a checkpoint, one with random weights of ``preset`` is written to a temporary folder
    (speed does not depend on the weights).
    """
    import rclpy
    import torch
    import yaml
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from svsgan_core.io import rosio
    from svsgan_core.runtime.synthesizer import VideoSynthesizer

    def say(text):
        if log:
            log(text)

    tmp = tempfile.TemporaryDirectory(prefix='svsgan-bench-')
    source = checkpoint or f'random weights, preset {preset}'
    if checkpoint is None:
        from svsgan_core.models import SVSGenerator
        from svsgan_core.models.config import preset as make_preset
        from svsgan_core.runtime.checkpoint import save_checkpoint

        torch.manual_seed(0)
        checkpoint = str(
            save_checkpoint(Path(tmp.name) / preset, SVSGenerator(make_preset(preset)))
        )
    if threads:
        torch.set_num_threads(threads)
    synth = VideoSynthesizer.from_checkpoint(checkpoint, device=device)
    maps = label_sequence(frames, height, width, synth.cfg.num_classes)
    params = Path(tmp.name) / 'params.yaml'
    params.write_text(
        yaml.safe_dump(
            {
                '/**': {
                    'ros__parameters': dict(
                        checkpoint=checkpoint,
                        device=device,
                        num_threads=threads,
                        mode='lossless',
                        label_encoding='ids',
                        input_topics=['/svsgan_bench/labels'],
                        output_topics=['/svsgan_bench/image'],
                        status_period_s=0.1,
                        status_topic='/svsgan_bench/status',
                    )
                }
            }
        )
    )
    domain_id = random.randint(120, 200) if domain_id is None else domain_id
    node_proc = subprocess.Popen(
        _node_command(str(params)),
        env=_env(domain_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    node_log: list[str] = []
    threading.Thread(target=lambda: node_log.extend(node_proc.stdout), daemon=True).start()

    context = rclpy.Context()
    saved_range = os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    rclpy.init(
        context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO
    )
    received: dict[int, float] = {}
    status: list[tuple[float, dict]] = []
    arrived = threading.Condition()
    executor = None
    try:
        bench = rclpy.create_node('svsgan_bench', context=context)
        qos = QoSProfile(depth=max(100, frames), reliability=ReliabilityPolicy.RELIABLE)
        pub = bench.create_publisher(Image, '/svsgan_bench/labels', qos)

        def on_image(msg):
            now = time.perf_counter()
            with arrived:
                received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = now
                arrived.notify_all()

        def on_status(msg):
            now = time.perf_counter()
            with arrived:
                status.append((now, json.loads(msg.data)))
                arrived.notify_all()

        bench.create_subscription(Image, '/svsgan_bench/image', on_image, qos)
        bench.create_subscription(String, '/svsgan_bench/status', on_status, 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(bench)

        def spin():
            try:
                executor.spin()
            except ExternalShutdownException:
                pass

        threading.Thread(target=spin, daemon=True).start()

        deadline = time.monotonic() + timeout_s
        say('waiting for the node (model loading)...')
        while (
            pub.get_subscription_count() == 0
            or bench.count_publishers('/svsgan_bench/image') == 0
            or not status
        ):
            if node_proc.poll() is not None:
                raise RuntimeError('generator node exited:\n' + ''.join(node_log[-20:]))
            if time.monotonic() > deadline:
                raise TimeoutError('generator node did not come up')
            time.sleep(0.05)

        pass_index = [0]

        def messages():
            """One pass of frames on stamps that start a new sequence (backward from the last)."""
            pass_index[0] += 1
            base = (1000 - 10 * pass_index[0]) * 1_000_000_000
            out = []
            for k, m in enumerate(maps):
                msg = Image()
                ns = base + k * 50_000_000
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
                msg.header.frame_id = 'bench'
                rosio.fill_image(msg, m, 'mono8')
                out.append((ns, msg))
            return out

        def wait_for(ns):
            with arrived:
                if not arrived.wait_for(
                    lambda: ns in received, timeout=max(1.0, deadline - time.monotonic())
                ):
                    raise TimeoutError(f'no output for stamp {ns}')
                return received[ns]

        def node_counters():
            """The node's cumulative (model seconds, frames) from a status sent after this call."""
            asked = time.perf_counter()
            with arrived:
                if not arrived.wait_for(lambda: status and status[-1][0] > asked, timeout=30):
                    raise TimeoutError('no status from the node')
                return status[-1][1]['infer_s_total'], status[-1][1]['frames_total']

        def step(m):
            t0 = time.perf_counter()
            synth.step(m)
            return time.perf_counter() - t0

        def latency_pass():
            """Each frame twice, back to back: direct, then through the node (load drifts)."""
            direct, node = [], []
            synth.reset()
            for (ns, msg), m in zip(messages(), maps):
                direct.append(step(m))
                t0 = time.perf_counter()
                pub.publish(msg)
                node.append(wait_for(ns) - t0)
            return direct, node

        def throughput_pass(node_first):
            def node():
                batch = messages()
                t0 = time.perf_counter()
                for _, msg in batch:
                    pub.publish(msg)
                return wait_for(batch[-1][0]) - t0

            def direct():
                synth.reset()
                return sum(step(m) for m in maps)

            if node_first:
                n = node()
                return direct(), n
            d = direct()
            return d, node()

        say('warming up...')
        for ns, msg in messages()[: max(1, warmup)]:
            pub.publish(msg)
            wait_for(ns)
        synth.reset()
        for m in maps[: max(1, warmup)]:
            step(m)
        direct_t, latency_t, model_lat, direct_wall, node_wall, model_tp = [], [], [], [], [], []
        for r in range(rounds):
            say(f'round {r + 1}/{rounds}: latency (paired), then throughput')
            c0 = node_counters()
            d, n = latency_pass()
            c1 = node_counters()
            direct_t += d
            latency_t += n
            model_lat.append((c1[0] - c0[0], c1[1] - c0[1]))
            d, n = throughput_pass(node_first=bool(r % 2))
            c2 = node_counters()
            direct_wall.append(d)
            node_wall.append(n)
            model_tp.append((c2[0] - c1[0], c2[1] - c1[1]))
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=context)
        if saved_range is None:
            os.environ.pop('ROS_AUTOMATIC_DISCOVERY_RANGE', None)
        else:
            os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = saved_range
        if node_proc.poll() is None:
            node_proc.send_signal(2)
            try:
                node_proc.wait(30)
            except subprocess.TimeoutExpired:
                node_proc.kill()
        tmp.cleanup()

    ms = 1e3
    model_ms = ms * sum(t for t, _ in model_lat) / sum(n for _, n in model_lat)
    node_mean = ms * statistics.mean(latency_t)
    frames_tp = frames * rounds
    model_tp_ms = ms * sum(t for t, _ in model_tp) / sum(n for _, n in model_tp)
    node_tp_ms = ms * sum(node_wall) / frames_tp
    return {
        'checkpoint': source,
        'model_resolution': list(synth.resolution),
        'input_resolution': [height, width],
        'device': device,
        'threads': threads,
        'frames_per_round': frames,
        'rounds': rounds,
        # unpaired comparison with the synthesizer called in this process (noisy on a shared CPU)
        'direct_ms_median': round(ms * statistics.median(direct_t), 2),
        'node_latency_ms_median': round(ms * statistics.median(latency_t), 2),
        'paired_difference_ms_median': round(
            ms * statistics.median(n - d for d, n in zip(direct_t, latency_t)), 2
        ),
        'direct_fps': round(frames_tp / sum(direct_wall), 3),
        'node_fps': round(frames_tp / sum(node_wall), 3),
        # what the node adds around its own model time on the very same frames (robust to load)
        'node_model_ms': round(model_ms, 2),
        'node_latency_ms_mean': round(node_mean, 2),
        'added_latency_ms': round(node_mean - model_ms, 2),
        'latency_overhead_pct': round(100 * (node_mean / model_ms - 1), 2),
        'throughput_model_ms_per_frame': round(model_tp_ms, 2),
        'throughput_wall_ms_per_frame': round(node_tp_ms, 2),
        'throughput_overhead_pct': round(100 * (node_tp_ms / model_tp_ms - 1), 2),
    }


def format_markdown(r: dict) -> str:
    h, w = r['input_resolution']
    mh, mw = r['model_resolution']
    return (
        f"{w}x{h} input, model {mw}x{mh} ({r['checkpoint']}), {r['device']}, "
        f"{r['threads']} thread(s), "
        f"{r['rounds']} rounds x {r['frames_per_round']} frames\n\n"
        '| | direct `VideoSynthesizer.step` | generator node (lossless, DDS round trip) '
        '| node adds |\n'
        '|---|---|---|---|\n'
        f"| latency, median | {r['direct_ms_median']:.1f} ms | "
        f"{r['node_latency_ms_median']:.1f} ms | "
        f"{r['paired_difference_ms_median']:+.1f} ms (median of paired frames) |\n"
        f"| latency vs the node's own model time | {r['node_model_ms']:.1f} ms | "
        f"{r['node_latency_ms_mean']:.1f} ms | "
        f"{r['added_latency_ms']:+.1f} ms ({r['latency_overhead_pct']:+.1f} %) |\n"
        f"| throughput | {r['direct_fps']:.2f} fps | {r['node_fps']:.2f} fps | "
        f"{r['throughput_overhead_pct']:+.1f} % wall time over the node's model time |\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='svs_gan_ros.bench', description=__doc__.split('\n\n')[0]
    )
    parser.add_argument('--frames', type=int, default=15, help='frames per round')
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--width', type=int, default=512)
    parser.add_argument('--height', type=int, default=256)
    parser.add_argument(
        '--preset', default='tiny', help='random-weight preset when no --checkpoint is given'
    )
    parser.add_argument('--checkpoint')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch threads, in the node and here (0: default)'
    )
    parser.add_argument(
        '--json', action='store_true', help='print JSON instead of a Markdown table'
    )
    args = parser.parse_args(argv)
    result = measure_node_overhead(
        frames=args.frames,
        width=args.width,
        height=args.height,
        preset=args.preset,
        checkpoint=args.checkpoint,
        device=args.device,
        threads=args.threads,
        rounds=args.rounds,
        log=lambda t: print(t, file=sys.stderr),
    )
    print(json.dumps(result, indent=2) if args.json else format_markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
