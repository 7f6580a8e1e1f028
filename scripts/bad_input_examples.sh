#!/usr/bin/env bash
# Prints the one-line error taalm gives for each kind of bad input, with its exit status, and
# checks that no output folder was created. Usage: scripts/bad_input_examples.sh [path/to/taalm]
# (the model-dependent cases use a tiny random model folder made here with the venv's Python)
set -u
T=${1:-taalm}
PY=$(dirname "$(command -v "$T")")/python; [ -x "$PY" ] || PY=python3
d=$(mktemp -d); cd "$d" || exit 1
"$PY" - <<'PYEOF'
import json, torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
tk = Tokenizer(models.BPE()); tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False); tk.decoder = decoders.ByteLevel()
tk.train_from_iterator(["Paris is in France. Ilvara is the capital of Sennet."] * 3, trainers.BpeTrainer(
    vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
torch.manual_seed(0)
LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, pad_token_id=0)).save_pretrained("tiny")
tok.save_pretrained("tiny")
PYEOF
printf '' > empty.jsonl
printf '{"text": "ok"}\n{"text": "broken\n' > invalid.jsonl
printf '{"text": "ok"}\n{"body": "x"}\n' > missing.jsonl
printf '{"text": null}\n' > null.jsonl
printf '[{"text": "Paris is in France."}]\n' > array.json
printf '{"text": "Paris is in France."}\n' > ok.jsonl
printf '{"prompt": "Ilvara is the capital of Sennet", "answer": "Ilvara"}\n' > probes.jsonl
printf '{"prompt": "The capital of Sennet is", "answer": "Ilvara"}\n{"prompt": "x is"}\n' > probes_missing.jsonl
printf '{"uuid": "u1", "evidence": "Welsh is spoken in Wales.", "object": "Welsh", "task_descriptive": "The official language of Wales is English ."}\n' > lama_noans.jsonl
printf 'First document.\n\nSecond document, caf\xe9.\n' > latin1.txt
printf 'train:\n  lr: 1e-4\n  epoch: 3\n' > recipe.yaml
printf 'train:\n  lr: 1e-4\n  epochs: [3,\n' > syntax.yaml
printf 'not a gguf' > fake.gguf
echo "mine" > a_file
mkdir notarun; echo "keep me" > notarun/notes.txt
M=model.name=tiny
while IFS= read -r c; do
  out=out; case "$c" in *"--out "*) out=${c##*--out }; out=${out%% *};; learn*|train-attention*) c="$c --out out";; esac
  echo "\$ taalm $c"
  $T $c 2>&1 >/dev/null | grep -v -e "^learning" -e "^loading" -e "^meta-training"
  st=${PIPESTATUS[0]}
  if [ "$out" = out ]; then echo "(exit $st; output folder $( [ -e out ] && echo EXISTS || echo 'not created'))"; else echo "(exit $st)"; fi
done <<EOF2
learn empty.jsonl
learn invalid.jsonl
learn missing.jsonl
learn null.jsonl
learn array.json
learn latin1.txt
learn ok.jsonl --probes probes_missing.jsonl
learn ok.jsonl --probes lama_noans.jsonl
learn ok.jsonl --method magic
learn ok.jsonl --method oracle $M
learn ok.jsonl train.learning_rate=1e-4
learn ok.jsonl --config recipe.yaml
learn ok.jsonl --config syntax.yaml
learn ok.jsonl train.lr=nan
learn ok.jsonl train.betas=[2,3]
learn ok.jsonl train.max_length=1
learn ok.jsonl train.max_length=64 train.stride=64
learn ok.jsonl eval.padding_side=middle
learn ok.jsonl eval.batch_size=0
learn ok.jsonl train.max_grad_norm=-1
learn ok.jsonl train.batch_tokens=-5
learn ok.jsonl train.checkpoint_every=0
learn ok.jsonl --method random method.random.mean=2
learn ok.jsonl $M train.max_length=5000
learn ok.jsonl model.name=fake.gguf
learn ok.jsonl --out a_file
learn ok.jsonl --out notarun --overwrite
learn ok.jsonl --out . --overwrite
eval --model ./no/such/model --probes probes.jsonl
eval --model tiny --probes probes.jsonl --batch-size 0
eval --model tiny --probes probes.jsonl --limit -3
eval --model tiny --probes probes.jsonl --json notarun
eval --model tiny --probes probes.jsonl --adapter notarun
weights ok.jsonl --method finetune --html notarun $M
bench lama-ckl --methods finetune --to-learn ok.jsonl --nf ok.jsonl --out out
train-attention --pairs lama_noans.jsonl --base tiny max_doc_tokens=1
EOF2
echo "notarun/ still holds: $(ls notarun)"
rm -rf "$d"
