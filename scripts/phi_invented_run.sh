#!/usr/bin/env bash
# The meta-training run behind the φ of issue 25, in parts that each fit a session of the 2-core
# CPU machine (the run itself is resumable; this script keeps what a resume needs in the repository).
#
#   scripts/phi_invented_run.sh pool     # rebuild the pool (deterministic; ~17 min): /work/runs/pool
#   scripts/phi_invented_run.sh start    # supervised start (~9 min), then meta-training from it
#   scripts/phi_invented_run.sh resume   # continue the run from the committed checkpoint
#   scripts/phi_invented_run.sh save     # copy the run's logs and newest checkpoint into the repository
#
# Paths: TREX/LAMA data beside the repository (../shared/data), scratch in RUNS (default /work/runs).
# The committed part lives in benchmarks/results/phi_invented_smollm2/ (supervised/phi is the
# init= of the run; run/ holds its config, logs, validation and the newest checkpoint only).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-/work/runs}
DATA=${DATA:-../shared/data}
KEEP=benchmarks/results/phi_invented_smollm2
RECIPE=src/taalm/recipes/phi_smollm2_invented.yaml
TAALM=${TAALM:-.venv/bin/taalm}
meta() {
  "$TAALM" train-attention --pairs "$RUNS/pool/train.jsonl" --val "$RUNS/pool/val.jsonl" \
    --val "$RUNS/pool/val_invented.jsonl" --val-limit 128 --config "$RECIPE" --out "$RUNS/phi_inv" \
    "init=$KEEP/supervised/phi" --quiet "$@"
}
case "${1:-}" in
  pool)
    "$TAALM" data pool "$DATA/trex" --exclude "$DATA/lama_ckl" --model smollm2-135m --val 256 --invent 0.5 \
      --out "$RUNS/pool" --quiet ;;
  start)
    "$TAALM" train-attention --supervised --pairs "$RUNS/pool/train.jsonl" --config "$RECIPE" \
      --out "$RUNS/phi_sup" val.n_pairs=0 --quiet
    mkdir -p "$KEEP/supervised"
    cp -r "$RUNS/phi_sup/phi" "$RUNS/phi_sup/log.jsonl" "$RUNS/phi_sup/run.json" "$RUNS/phi_sup/config.yaml" "$KEEP/supervised/"
    meta ;;
  resume)
    if [ ! -f "$RUNS/phi_inv/run.json" ]; then
      mkdir -p "$RUNS/phi_inv" && cp -r "$KEEP/run/." "$RUNS/phi_inv/"
    fi
    meta --resume ;;
  save)
    mkdir -p "$KEEP/run/checkpoints"
    for f in config.yaml run.json log.jsonl val.jsonl val_references.json weights_before.json summary.json \
             validation.png weights.html weights.png; do
      [ -f "$RUNS/phi_inv/$f" ] && cp "$RUNS/phi_inv/$f" "$KEEP/run/"
    done
    newest=$(ls -d "$RUNS"/phi_inv/checkpoints/update-* 2>/dev/null | sort | tail -1)
    if [ -n "$newest" ]; then
      rm -rf "$KEEP/run/checkpoints"/update-*   # only the newest checkpoint is kept in the repository
      cp -r "$newest" "$KEEP/run/checkpoints/"
      python3 - "$RUNS/phi_inv/checkpoints" "$KEEP/run/checkpoints" "$(basename "$newest")" <<'EOF'
import json, sys, pathlib
src, dst, name = map(pathlib.Path, sys.argv[1:])
latest = json.loads((src / "latest.json").read_text()) if (src / "latest.json").is_file() else {}
if latest.get("folder", str(name)) != str(name):
    sys.exit(f"latest.json names {latest.get('folder')}, not {name}: copy by hand")
(dst / "latest.json").write_text((src / "latest.json").read_text())
EOF
    fi
    for d in best phi; do  # best/ = supervised/phi while update 0 is the best: delete it before committing
      [ -d "$RUNS/phi_inv/$d" ] && rm -rf "$KEEP/run/$d" && cp -r "$RUNS/phi_inv/$d" "$KEEP/run/"
    done
    du -sh "$KEEP" ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac
