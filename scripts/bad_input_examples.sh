#!/usr/bin/env bash
# Prints the one-line error taalm gives for each kind of bad input, with its exit status, and
# checks that no output folder was created. Usage: scripts/bad_input_examples.sh [path/to/taalm]
set -u
T=${1:-taalm}
d=$(mktemp -d); cd "$d" || exit 1
printf '' > empty.jsonl
printf '{"text": "ok"}\n{"text": "broken\n' > invalid.jsonl
printf '{"text": "ok"}\n{"body": "x"}\n' > missing.jsonl
printf '{"text": "Paris is in France."}\n' > ok.jsonl
printf '{"prompt": "Ilvara is the capital of Sennet", "answer": "Ilvara"}\n' > probes.jsonl
printf '{"prompt": "The capital of Sennet is", "answer": "Ilvara"}\n{"prompt": "x is"}\n' > probes_missing.jsonl
printf '{"uuid": "u1", "evidence": "Welsh is spoken in Wales.", "object": "Welsh", "task_descriptive": "The official language of Wales is English ."}\n' > lama_noans.jsonl
printf 'First document.\n\nSecond document, caf\xe9.\n' > latin1.txt
printf 'train:\n  lr: 1e-4\n  epoch: 3\n' > recipe.yaml
for c in "learn empty.jsonl" "learn invalid.jsonl" "learn missing.jsonl" "learn latin1.txt" \
         "learn ok.jsonl --probes probes_missing.jsonl" "learn ok.jsonl --probes lama_noans.jsonl" \
         "learn ok.jsonl --method magic" "learn ok.jsonl --method oracle" \
         "learn ok.jsonl train.learning_rate=1e-4" "learn ok.jsonl --config recipe.yaml" \
         "eval --model ./no/such/model --probes probes.jsonl"; do
  case "$c" in learn*) c="$c --out out";; esac
  echo "\$ taalm $c"
  $T $c 2>&1 >/dev/null | grep -v "^learning"
  echo "(exit ${PIPESTATUS[0]}; output folder $( [ -e out ] && echo EXISTS || echo 'not created'))"
done
rm -rf "$d"
