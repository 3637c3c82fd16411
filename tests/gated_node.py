"""The real generator node, whose model steps only when the test says so (tests/test_ros_node.py).

    python gated_node.py --ros-args ...   (generator_node's own arguments)

The checkpoint's synthesizer is loaded as usual; every step_batch then prints
{"event": "step_entered", "n": k} and waits for a go-ahead from stdin, one JSON command a line:
  {"op": "step"}                      let one step run
  {"op": "open"}                      let every step run from now on
  {"op": "hold"}                      wait for a go-ahead again
  {"op": "step_after_shutdown"}       let one step run once SIGINT has shut rclpy down; then prints
                                      {"event": "released_after_shutdown"}
So the test, not the machine's speed, decides how long the model takes per frame.
"""
from __future__ import annotations

import json
import sys
import threading
import time

import rclpy

from svs_gan_ros.generator_node import main as node_main
from svsgan_core.runtime.synthesizer import VideoSynthesizer


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + '\n')
    sys.stdout.flush()


class Gate:
    def __init__(self):
        self.cond = threading.Condition()
        self.permits = 0
        self.open = False
        self.steps = 0

    def wait(self) -> None:
        with self.cond:
            self.steps += 1
            emit(event='step_entered', n=self.steps)
            while not self.open and not self.permits:
                self.cond.wait()
            if not self.open:
                self.permits -= 1

    def _change(self, permits: int, open_: bool) -> None:
        with self.cond:
            self.permits, self.open = permits, open_
            self.cond.notify_all()

    def commands(self) -> None:
        for line in sys.stdin:
            op = json.loads(line)['op']
            if op == 'step':
                self._change(self.permits + 1, self.open)
            elif op == 'open':
                self._change(self.permits, True)
            elif op == 'hold':
                self._change(0, False)
            elif op == 'step_after_shutdown':
                deadline = time.monotonic() + 60  # safety net; the test fails without the event
                while rclpy.ok() and time.monotonic() < deadline:
                    time.sleep(0.01)
                if not rclpy.ok():
                    emit(event='released_after_shutdown')
                self._change(self.permits + 1, self.open)


class GatedSynthesizer:
    """The loaded synthesizer with a gate in front of each step; everything else passes through."""

    def __init__(self, synth, gate: Gate):
        self._synth = synth
        self._gate = gate

    def step_batch(self, label_maps, streams, **kw):  # kw: instances=, for a camera with an instance topic
        self._gate.wait()
        return self._synth.step_batch(label_maps, streams, **kw)

    def __getattr__(self, name):
        return getattr(self._synth, name)


def main() -> int:
    gate = Gate()
    load = VideoSynthesizer.from_checkpoint
    VideoSynthesizer.from_checkpoint = classmethod(lambda cls, *a, **kw: GatedSynthesizer(load(*a, **kw), gate))
    threading.Thread(target=gate.commands, daemon=True).start()
    return node_main()


if __name__ == '__main__':
    sys.exit(main())
