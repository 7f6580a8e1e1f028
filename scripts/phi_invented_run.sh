#!/usr/bin/env bash
# The meta-training run behind the φ of issue 25, in parts that each fit a session of the 2-core
# CPU machine (the run itself is resumable; this script keeps what a resume needs in the repository).
#
#   scripts/phi_invented_run.sh pool     # rebuild the pool (deterministic; ~17 min): /work/runs/pool
#   scripts/phi_invented_run.sh start    # supervised start (~9 min), then meta-training from it
#   scripts/phi_invented_run.sh resume   # continue the run from its newest checkpoint (in RUNS)
#   scripts/phi_invented_run.sh save     # copy the run's logs, validation and best φ's README facts into the repository
#
# Paths: TREX/LAMA data beside the repository (../shared/data), scratch in RUNS (default /work/runs).
# The committed part lives in benchmarks/results/phi_invented_smollm2/: configs, logs and validation
# only. Checkpoints and φ weights stay in RUNS (the shipped φ is src/taalm/phi_default); a run that
# outlasts a session resumes from RUNS on the same machine, or restarts with `start` elsewhere.
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
    "init=$RUNS/phi_sup/phi" --quiet "$@"
}
case "${1:-}" in
  pool)
    "$TAALM" data pool "$DATA/trex" --exclude "$DATA/lama_ckl" --model smollm2-135m --val 256 --invent 0.5 \
      --out "$RUNS/pool" --quiet ;;
  start)
    "$TAALM" train-attention --supervised --pairs "$RUNS/pool/train.jsonl" --config "$RECIPE" \
      --out "$RUNS/phi_sup" val.n_pairs=0 --quiet
    mkdir -p "$KEEP/supervised"
    cp "$RUNS/phi_sup/log.jsonl" "$RUNS/phi_sup/run.json" "$RUNS/phi_sup/config.yaml" "$KEEP/supervised/"
    meta ;;
  resume)
    [ -f "$RUNS/phi_inv/run.json" ] || { echo "no run in $RUNS/phi_inv: use start"; exit 2; }
    meta --resume ;;
  save)
    mkdir -p "$KEEP/run"
    for f in config.yaml run.json log.jsonl val.jsonl val_references.json weights_before.json summary.json \
             validation.png weights.html weights.png; do
      [ -f "$RUNS/phi_inv/$f" ] && cp "$RUNS/phi_inv/$f" "$KEEP/run/"
    done
    du -sh "$KEEP" ;;
  *) sed -n 2,12p "$0"; exit 2 ;;
esac
