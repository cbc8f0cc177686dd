#!/usr/bin/env bash
# Tagged back-translation, end to end, as docs/training.md's recipe says, on the demo data:
#   1. a reverse model (de -> en) on the first half of the parallel data;
#   2. the German side of the second half, taken as monolingual text, back-translated in
#      SHARDS shards (--shard k/N, run side by side);
#   3. an en -> de model on the real half plus the tagged synthetic half (tag: bt).
# Usage: scripts/backtranslate.sh WORK_DIR [STEPS] [SHARDS]   (STEPS per model, default 300)
set -euo pipefail
work=${1:?usage: scripts/backtranslate.sh WORK_DIR [STEPS] [SHARDS]}
steps=${2:-300}
shards=${3:-2}
demo=$(python -c "import mt_cli, pathlib; print(pathlib.Path(mt_cli.__file__).parent / 'core' / 'demo_data')")
mkdir -p "$work" && cd "$work"
head -n 10000 "$demo/train.en" > real.en && head -n 10000 "$demo/train.de" > real.de
tail -n 10000 "$demo/train.de" > mono.de

cat > de-en.yaml <<YAML
base: demo
data:
  source_lang: de
  target_lang: en
  train: [{source: real.de, target: real.en}]
  dev: {source: $demo/dev.de, target: $demo/dev.en}
  test: null
train: {max_steps: $steps, eval_every: $steps}
YAML
mt-cli -q train de-en.yaml --run-dir runs/de-en --overwrite

pids=()
for k in $(seq 1 "$shards"); do
  mt-cli -q translate -m runs/de-en mono.de --shard "$k/$shards" --beam-size 1 -o "mono.en.$k" & pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for k in $(seq 1 "$shards"); do cat "mono.en.$k"; done > mono.en
test "$(wc -l < mono.en)" -eq "$(wc -l < mono.de)"

cat > en-de-bt.yaml <<YAML
base: demo
data:
  source_lang: en
  target_lang: de
  train:
    - {source: real.en, target: real.de}
    - {source: mono.en, target: mono.de, tag: bt, weight: 0.5}
  dev: {source: $demo/dev.en, target: $demo/dev.de}
  test: {source: $demo/test.en, target: $demo/test.de}
train: {max_steps: $steps, eval_every: $steps}
YAML
mt-cli -q train en-de-bt.yaml --run-dir runs/en-de-bt --overwrite
mt-cli -q evaluate -m runs/en-de-bt -s "$demo/test.en" -r "$demo/test.de" --metrics bleu --json
