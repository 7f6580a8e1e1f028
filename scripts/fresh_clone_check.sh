#!/usr/bin/env bash
# Times the README's two commands, each in its own fresh clone of this repository, the way a new
# user meets them: no pip cache (PIP_NO_CACHE_DIR=1) and an empty model cache. Writes
# benchmarks/results/fresh_clone.json (and the demo's summary/plot from that run).
# Usage: scripts/fresh_clone_check.sh [work-dir]   (default: a new temporary folder)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
export PIP_NO_CACHE_DIR=1 TAALM_CACHE_DIR="$work/model-cache"
results=()
for job in test demo; do
  rm -rf "$work/$job" "$TAALM_CACHE_DIR"
  git clone -q "$repo" "$work/$job"
  start=$(date +%s.%N)
  set +e
  (cd "$work/$job" && python3 bootstrap.py "$job") > "$work/$job.log" 2>&1
  rc=$?
  set -e
  end=$(date +%s.%N)
  wall=$(python3 -c "print(round($end - $start, 1))")
  echo "$job: exit $rc, $wall s (log: $work/$job.log)"
  results+=("\"$job\": {\"command\": \"python3 bootstrap.py $job\", \"exit\": $rc, \"wall_seconds\": $wall}")
done
tail_test=$(grep -E "passed|failed" "$work/test.log" | tail -1)
setup_s() { grep -oE "set-up done in [0-9]+ s" "$1" | grep -oE "[0-9]+" | head -1; }
setup_test=$(setup_s "$work/test.log"); setup_demo=$(setup_s "$work/demo.log")
commit=$(git -C "$repo" rev-parse HEAD)
machine="$(nproc) CPU cores, $(python3 -c 'import platform; print(platform.processor() or platform.machine())'), $(free -g | awk '/Mem:/{print $2}') GiB RAM"
cat > "$repo/benchmarks/results/fresh_clone.json" <<JSON
{
  "commit": "$commit",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "machine": "$machine",
  "conditions": "fresh clone per command, PIP_NO_CACHE_DIR=1, empty model cache",
  ${results[0]},
  ${results[1]},
  "setup_seconds": {"test": ${setup_test:-null}, "demo": ${setup_demo:-null}},
  "pytest_summary": "$tail_test"
}
JSON
cp "$work/demo/runs/demo/summary.json" "$repo/benchmarks/results/demo_cpu2.json"
cp "$work/demo/runs/demo/accuracy.png" "$repo/docs/demo_accuracy.png"
cat "$repo/benchmarks/results/fresh_clone.json"
