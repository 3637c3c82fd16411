#!/usr/bin/env bash
# The suite N times in a row in a fresh clone of HEAD, as a new user (and CI) runs it, optionally with
# every core kept busy: a test that passes only at one machine speed shows up here, not in CI later.
#
#   scripts/suite_repeat.sh [-n N] [--busy] [--log FILE]
#
# Run 1 is `bash .ci/run` (the README's set-up, then its test command); runs 2..N are the README's
# test command alone. Prints one line per run (wall seconds, pytest's summary) and stops at the
# first failing run with a non-zero exit. --busy starts one `yes > /dev/null` loop per core for the
# whole time and stops them at the end. The clone is kept: .ci/run's `pip install -e` points this
# environment at it (run the README's set-up in your checkout again afterwards).
set -uo pipefail

runs=5 busy=0 log=/dev/null
while [ $# -gt 0 ]; do
  case "$1" in
    -n) runs=$2; shift 2 ;;
    --busy) busy=1; shift ;;
    --log) log=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "suite_repeat.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
clone=$(mktemp -d /tmp/suite-repeat.XXXXXX)
hogs=()
cleanup() { [ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null; }
trap cleanup EXIT
git clone -q "$repo" "$clone"
if [ "$busy" = 1 ]; then
  for _ in $(seq "$(nproc)"); do yes > /dev/null & hogs+=($!); done
fi
echo "clone of $(git -C "$clone" rev-parse --short HEAD) in $clone; $runs runs; busy=$busy ($(nproc) cores)"
cd "$clone" || exit 1
for i in $(seq "$runs"); do
  if [ "$i" = 1 ]; then cmd=(bash .ci/run); else cmd=(python3 -m pytest -q); fi
  start=$(date +%s)
  "${cmd[@]}" > "$clone/run$i.log" 2>&1
  rc=$?
  cat "$clone/run$i.log" >> "$log"
  summary=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$clone/run$i.log" | tail -1)
  echo "run $i: ${cmd[*]}: $(( $(date +%s) - start )) s, exit $rc: $summary"
  if [ "$rc" != 0 ]; then
    grep -E '^(FAILED|ERROR) ' "$clone/run$i.log"
    exit 1
  fi
done
