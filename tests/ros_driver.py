"""A real ROS 2 process for tests/test_ros_node.py: publishes what the test sends it, reports what it receives.

    python ros_driver.py '{"publishers": [[topic, type, reliability], ...], "subscriptions": [[topic, type], ...]}'

stdin takes one JSON command per line; stdout gives one JSON event per line:
  {"op": "wait_matched", "timeout": s}        -> {"event": "matched", "ok": bool, "missing": [...]}
  {"op": "publish", "topic": t, "msg": {...}}  -> {"event": "published", ...} (msg: see _build)
  {"op": "stream", "topic": t, "msgs": [...], "rate_hz": r}  publishes at a steady rate
  {"op": "parameters", "node": "/name"}      -> {"event": "parameters", "values": {name: [type, value]}}
                                                 (list_parameters + get_parameters, as `ros2 param dump`)
  {"op": "quit"}
  received messages                           -> {"event": "msg", "topic": t, ...} (see _describe)
Each published label frame is preceded by a /clock message at its stamp, as a simulator or
`ros2 bag play --clock` would send.
"""
from __future__ import annotations

import array
import base64
import hashlib
import json
import sys
import threading
import time

import rclpy
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.executors import ExternalShutdownException
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

TYPES = {'Image': Image, 'CompressedImage': CompressedImage, 'String': String, 'CameraInfo': CameraInfo}
_print_lock = threading.Lock()


def emit(**event) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(event) + '\n')
        sys.stdout.flush()


def _stamp(ns: int):
    from builtin_interfaces.msg import Time
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _bytes(b64: str) -> array.array:
    buf = array.array('B')
    buf.frombytes(base64.b64decode(b64))
    return buf


def _build(kind: str, spec: dict):
    msg = TYPES[kind]()
    msg.header.stamp = _stamp(spec['stamp_ns'])
    msg.header.frame_id = spec.get('frame_id', '')
    if kind == 'Image':
        msg.height, msg.width, msg.step = spec['height'], spec['width'], spec['step']
        msg.encoding = spec['encoding']
        msg.is_bigendian = spec.get('is_bigendian', 0)
        msg.data = _bytes(spec['data'])
    elif kind == 'CompressedImage':
        msg.format = spec['format']
        msg.data = _bytes(spec['data'])
    elif kind == 'CameraInfo':
        msg.height, msg.width = spec['height'], spec['width']
    return msg


class Driver(Node):
    def __init__(self, config: dict):
        super().__init__('svsgan_test_driver')
        self.publishers_ = {}
        self.kinds = {}
        self.sent: dict[int, float] = {}
        for topic, kind, reliability in config.get('publishers', []):
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                             else ReliabilityPolicy.BEST_EFFORT)
            self.publishers_[topic] = self.create_publisher(TYPES[kind], topic, qos)
            self.kinds[topic] = kind
        self.clock_pub = self.create_publisher(Clock, '/clock', 10)
        self.subs = []
        for topic, kind in config.get('subscriptions', []):
            self.subs.append(self.create_subscription(
                TYPES[kind], topic, lambda m, t=topic, k=kind: self._on_msg(t, k, m), QoSProfile(depth=1000)))

    def _on_msg(self, topic: str, kind: str, msg) -> None:
        now = time.monotonic()
        if kind == 'String':
            emit(event='msg', topic=topic, data=msg.data, t=now)
            return
        ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        event = dict(event='msg', topic=topic, kind=kind, stamp_ns=ns, frame_id=msg.header.frame_id, t=now)
        sent = self.sent.get(ns)
        if sent is not None:
            event['latency'] = now - sent
        if kind == 'Image':
            data = bytes(msg.data)
            event.update(height=msg.height, width=msg.width, encoding=msg.encoding, step=msg.step,
                         size=len(data), sha=hashlib.sha1(data).hexdigest())
            if msg.height * msg.width <= 64 * 64:
                event['data'] = base64.b64encode(data).decode()
        elif kind == 'CompressedImage':
            event.update(format=msg.format, size=len(msg.data))
        elif kind == 'CameraInfo':
            event.update(height=msg.height, width=msg.width)
        emit(**event)

    def publish(self, topic: str, spec: dict) -> None:
        msg = _build(self.kinds[topic], spec)
        if spec.get('clock', True):
            self.clock_pub.publish(Clock(clock=msg.header.stamp))
        self.sent[spec['stamp_ns']] = time.monotonic()
        self.publishers_[topic].publish(msg)
        emit(event='published', topic=topic, stamp_ns=spec['stamp_ns'], t=self.sent[spec['stamp_ns']])

    def _call(self, kind, service: str, request, timeout: float):
        client = self.create_client(kind, service)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise RuntimeError(f'no service {service}')
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise RuntimeError(f'no answer from {service}')
                time.sleep(0.01)
            return future.result()
        finally:
            self.destroy_client(client)

    def parameters(self, node: str, timeout: float) -> dict:
        """Every parameter of `node` the way ros2cli's `ros2 param dump` reads them: the names from its
        list_parameters service (no prefix, any depth), then their values from get_parameters."""
        names = self._call(ListParameters, f'{node}/list_parameters', ListParameters.Request(), timeout).result.names
        values = self._call(GetParameters, f'{node}/get_parameters', GetParameters.Request(names=names), timeout).values
        return {name: [Parameter.Type(v.type).name, parameter_value_to_python(v)] for name, v in zip(names, values)}

    def missing(self) -> list[str]:
        out = [t for t, p in self.publishers_.items() if p.get_subscription_count() == 0]
        # the node runs on use_sim_time: a /clock published before its clock subscription is matched is
        # lost (volatile), and the node's clock then stays at 0 however long the test waits
        out += ['/clock'] if self.clock_pub.get_subscription_count() == 0 else []
        out += [s.topic_name for s in self.subs if self.count_publishers(s.topic_name) == 0]
        return out


def commands(node: Driver) -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd['op']
        if op == 'quit':
            break
        if op == 'wait_matched':
            deadline = time.monotonic() + cmd.get('timeout', 30)
            while node.missing() and time.monotonic() < deadline:
                time.sleep(0.05)
            emit(event='matched', ok=not node.missing(), missing=node.missing())
        elif op == 'publish':
            node.publish(cmd['topic'], cmd['msg'])
        elif op == 'parameters':
            try:
                emit(event='parameters', values=node.parameters(cmd['node'], cmd.get('timeout', 30)))
            except RuntimeError as exc:
                emit(event='parameters', error=str(exc))
        elif op == 'stream':
            period = 1.0 / cmd['rate_hz']
            start = time.monotonic()
            for i, spec in enumerate(cmd['msgs']):
                delay = start + i * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                node.publish(cmd['topic'], spec)
            emit(event='streamed', topic=cmd['topic'], count=len(cmd['msgs']))
    rclpy.try_shutdown()


def main() -> None:
    rclpy.init()
    node = Driver(json.loads(sys.argv[1]))
    threading.Thread(target=commands, args=(node,), daemon=True).start()
    emit(event='ready')
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
