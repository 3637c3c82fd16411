#!/usr/bin/env bash
# The checks that need a CUDA machine (issue 16), as one script to run the moment a GPU is at hand:
#   1. the CUDA tests (tests/test_fast_paths.py: the CUDA paths follow the CPU frames, CUDA-graph
#      streaming; tests/test_export.py's TensorRT build; tests/test_precision.py: the warp in bf16),
#   2. `svsgan bench` of the 1024x512 preset with 1 and 4 cameras in fp16 and bf16,
#   3. a short bf16 `svsgan train` of the 512x256 paper config on `make-synthetic` data: steps/s
#      (after the first, compiling/allocating step) and peak CUDA memory.
# Prints the numbers, stays under 8 minutes (each part has its own timeout), exits non-zero with
# "GPU CHECK FAILED: <part>" on the first failure. Results land in $SVSGAN_GPU_CHECK_OUT (default: a
# new temporary folder): bench-*.json, train/log.jsonl, summary.txt.
#
#   bash scripts/gpu_check.sh                                  # on the CUDA machine
#   SVSGAN_GPU_CHECK_DEVICE=cpu bash scripts/gpu_check.sh      # dry run of the same steps, tiny sizes
#
# Run from the repository root (or anywhere: it cd's there). docs/performance.md says what it measures.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=${SVSGAN_GPU_CHECK_DEVICE:-cuda}
OUT=${SVSGAN_GPU_CHECK_OUT:-$(mktemp -d -t svsgan-gpu-check.XXXXXX)}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
PART="setup"
trap 'echo "GPU CHECK FAILED: $PART (exit $?; outputs in $OUT)" >&2' ERR

case "$DEVICE" in
  cuda)
    BENCH_PRESET=1024x512; BENCH_FRAMES=30; BENCH_WARMUP=5; PRECISIONS="fp16 bf16"; CAMERAS="1 4"
    TRAIN_CONFIG=training/configs/cityscapes_512x256.yaml; TRAIN_SIZE=512x256; TRAIN_STEPS=${SVSGAN_GPU_CHECK_STEPS:-40}
    SEQUENCES=4; FRAMES=8; CLIP=6; TRAIN_PRECISION=bf16; THREADS=8
    TEST_TIMEOUT=120; BENCH_TIMEOUT=45; SYNTH_TIMEOUT=60; TRAIN_TIMEOUT=110  # sum 470 s: under 8 minutes
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch sees no CUDA device')"
    ;;
  cpu)  # the dry run: the same commands at sizes a laptop does in a minute or two
    BENCH_PRESET=tiny; BENCH_FRAMES=2; BENCH_WARMUP=1; PRECISIONS="fp32"; CAMERAS="1 2"
    TRAIN_CONFIG=training/configs/synthetic_cpu.yaml; TRAIN_SIZE=128x64; TRAIN_STEPS=${SVSGAN_GPU_CHECK_STEPS:-3}
    SEQUENCES=2; FRAMES=4; CLIP=3; TRAIN_PRECISION=bf16; THREADS=1  # bf16 is CUDA-only: the trainer says so, trains fp32
    TEST_TIMEOUT=300; BENCH_TIMEOUT=120; SYNTH_TIMEOUT=120; TRAIN_TIMEOUT=300
    ;;
  *) echo "GPU CHECK FAILED: SVSGAN_GPU_CHECK_DEVICE must be cuda or cpu, not '$DEVICE'" >&2; exit 2 ;;
esac

echo "== svsgan gpu_check: device $DEVICE, outputs in $OUT"
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda,
      '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
START=$SECONDS

PART="CUDA tests"
echo "== $PART"
if [ "$DEVICE" = cuda ]; then
  # every test of these files; the CUDA ones are skipped where no device is, so here they must run
  timeout "$TEST_TIMEOUT" "$PY" -m pytest -q -rs tests/test_fast_paths.py tests/test_precision.py \
      "tests/test_export.py::test_tensorrt_engine_builds" 2>&1 | tee "$OUT/pytest.txt"
  if grep -q "SKIPPED.*needs a CUDA device" "$OUT/pytest.txt"; then
    echo "CUDA tests were skipped on a CUDA machine" >&2; false
  fi
else
  timeout "$TEST_TIMEOUT" "$PY" -m pytest -q tests/test_fast_paths.py -k "cuda" 2>&1 | tee "$OUT/pytest.txt"
fi

for precision in $PRECISIONS; do
  for cameras in $CAMERAS; do
    PART="bench $BENCH_PRESET $precision x$cameras"
    echo "== $PART"
    timeout "$BENCH_TIMEOUT" "$PY" -m svsgan_core.cli bench --preset "$BENCH_PRESET" --device "$DEVICE" \
        --precision "$precision" --cameras "$cameras" --frames "$BENCH_FRAMES" --warmup "$BENCH_WARMUP" \
        --backend torch --no-overhead --threads "$THREADS" --json-out "$OUT/bench-$precision-x$cameras.json"
  done
done

PART="make-synthetic $TRAIN_SIZE"
echo "== $PART"
timeout "$SYNTH_TIMEOUT" "$PY" -m svsgan_core.cli make-synthetic "$OUT/data" --sequences "$SEQUENCES" --frames "$FRAMES" \
    --size "$TRAIN_SIZE" --seed 0 2>/dev/null

PART="train $TRAIN_CONFIG $TRAIN_PRECISION, $TRAIN_STEPS steps"
echo "== $PART"
timeout "$TRAIN_TIMEOUT" "$PY" - "$DEVICE" "$TRAIN_CONFIG" "$OUT" "$TRAIN_STEPS" "$CLIP" "$TRAIN_PRECISION" \
    "$THREADS" <<'EOF'
"""svsgan train in this process, so that the peak CUDA memory of the run can be read afterwards."""
import json, sys, time
import torch
from svsgan_core.cli import main

device, config, out, steps, clip, precision, threads = sys.argv[1:]
sets = {"data.kind": "synthetic", "data.root": f"{out}/data", "data.sample_root": "null",
        "data.num_workers": "2", "data.options": "{augment: true, segment_length: %s}" % clip,
        "loss.vgg": "0.0",  # no VGG19 weight file on a bare machine (no downloads)
        "optim.precision": precision, "schedule.max_steps": steps, "schedule.seq_lengths": f"[{clip}]",
        "log.every": "1", "log.sample_every": "0", "log.checkpoint_every": "0", "log.tensorboard": "false",
        "log.progress": "false"}
args = ["train", "--config", config, "--device", device, "--threads", threads, "--run-dir", f"{out}/train"]
for k, v in sets.items():
    args += ["--set", f"{k}={v}"]
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
t0 = time.time()
code = main(args)
if code:
    sys.exit(f"svsgan train exited {code}")
rows = [json.loads(line) for line in open(f"{out}/train/log.jsonl")]
if len(rows) != int(steps):
    sys.exit(f"log.jsonl has {len(rows)} steps, expected {steps}")
bad = [r["step"] for r in rows if not all(v == v and abs(v) != float("inf") for v in (r["G_total"], r["D_total"]))]
if bad:
    sys.exit(f"non-finite losses at steps {bad}")
# rate after the first step (allocation, cudnn autotuning): steps 2..N over their wall time
rate = (len(rows) - 1) / (rows[-1]["wall_s"] - rows[0]["wall_s"]) if len(rows) > 1 else float("nan")
peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
print(f"train: {len(rows)} steps of {clip}-frame clips, {rate:.3f} steps/s after the first "
      f"({rows[0]['wall_s']:.1f} s for the first), peak CUDA memory {peak:.2f} GiB, "
      f"G_total {rows[0]['G_total']:.3f} -> {rows[-1]['G_total']:.3f}, wall {time.time() - t0:.0f} s")
EOF

PART="summary"
{
  echo "gpu_check $DEVICE $(date -u +%FT%TZ)"
  for f in "$OUT"/bench-*.json; do
    "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); p = d['pytorch']
print(f\"{sys.argv[1].rsplit('/', 1)[-1]}: {d['resolution']['width']}x{d['resolution']['height']} \"
      f\"{d['settings']['precision']} x{d['options']['cameras']}: {p['ms_per_frame_median']:.2f} ms/frame, \"
      f\"{p['frames_per_s']:.1f} frames/s, peak {p['peak_memory_mb']:.0f} MB\")" "$f"
  done
} | tee "$OUT/summary.txt"
echo "== gpu_check passed in $((SECONDS - START)) s; outputs in $OUT"
