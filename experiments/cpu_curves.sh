#!/usr/bin/env bash
# The CPU recipe curves (docs/results-cpu.md): each candidate recipe at several pretraining budgets
# on a 400-question selection split, two seeds side by side on one thread each, then the report with
# its comparison (gains beyond two standard errors) and curves (accuracy against CPU time).
#
#   bash experiments/cpu_curves.sh [CANDIDATE ...]     # default: every candidate below
#   BUDGETS="50 100" OUT=runs/c26 SELECTION=runs/selection400 bash experiments/cpu_curves.sh rope-spec
#
# Budgets are pretraining epochs; 50, 100, 200 and 360 are about 10, 21, 42 and 75 minutes of the 2
# cores alone (2,937 documents x 79 tokens an epoch at the 18,900 tokens/s that 2 ranks of one
# thread measured), or 15, 29, 58 and 105 CPU-minutes of one thread each. Every budget's cosine ends at its own last token (train.final_tokens). A
# candidate that changes only finetuning (*-spec-ft*, *-salient-ft*) finetunes its recipe's pretraining runs at
# the same budget (experiments.sweep --pretrained-from), so it costs minutes. Runs that finished are
# skipped, so the script continues where it stopped. The no-pretraining baseline, which no
# pretraining budget changes, is one sweep per variant (OUT/scratch-VARIANT). Nothing here reads the
# dev file: it is scored once, for the chosen recipe, by the README's command.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-datasets/birthplaces}
OUT=${OUT:-runs/cpu-curves}
BUDGETS=${BUDGETS:-50 100 200 360}
SEEDS=${SEEDS:-0 1}
HOLDOUT=${HOLDOUT:-400}  # held-out training questions to select on
SCRATCH=${SCRATCH:-1}  # 0: skip the no-pretraining baseline (a finetune-only candidate leaves it as it was)
EXTRA=${EXTRA:-}  # more --set overrides for every run, e.g. EXTRA="train.max_steps=2" to rehearse the script
SPEC="pretrain:data.objective=span_corruption pretrain:data.augment=none pretrain:data.question_mix=0"
# configs/cpu/ finetunes at 1e-4 since the vanilla-spec-ft* knobs (docs/results-cpu-finetune.md); the points of
# docs/results-cpu-round1.md and results-cpu-curves.md finetuned at 3e-4, as the knobs that change only the length still say
AT3E4="finetune:train.learning_rate=3e-4"
# replay's finetune (data/replay.py): 10 epochs at 3e-4 in batches of 16, the rate decaying to the run's own end
DECAY="finetune:train.epochs=10 finetune:train.learning_rate=3e-4 finetune:train.global_batch_size=16 finetune:train.final_tokens=run"
STORAGE="pretrain:data.objective=text pretrain:data.augment=name_anchored pretrain:data.question_mix=0.3"

described() { printf '%s\n%s\n%s\n' "$1" "$2" "$3"; }
candidate() {  # candidate NAME: its recipe and finetuning knob as the report's label says them, then its sweep arguments
  case $1 in
    vanilla-spec) described "SPEC's recipe" "" "--variants vanilla --set $SPEC" ;;  # the reference
    rope-spec) described "SPEC's recipe" "" "--variants rope --set $SPEC" ;;
    rope-spec-lr1e-3) described "SPEC's recipe, pretraining at 1e-3" "" \
      "--variants rope --set $SPEC pretrain:train.learning_rate=1e-3" ;;  # rope's own rate
    rope-salient) described "salient masking" "" "--variants rope --set $SPEC pretrain:data.masking=salient" ;;
    # salient masking on configs/cpu/'s own variant, where 360 epochs store enough to tell recipes apart
    vanilla-salient) described "salient masking" "" "--variants vanilla --set $SPEC pretrain:data.masking=salient" ;;
    # finetuning knobs on rope-spec's pretraining (borrowed: a knob costs a finetune, not a pretraining)
    rope-spec-ft2) described "SPEC's recipe" "finetune 2 epochs" "--variants rope --set $SPEC finetune:train.epochs=2 $AT3E4" ;;
    rope-spec-ftlr1e-4) described "SPEC's recipe" "finetune at 1e-4" \
      "--variants rope --set $SPEC finetune:train.learning_rate=1e-4" ;;
    rope-spec-ftlr3e-4) described "SPEC's recipe" "finetune at 3e-4" "--variants rope --set $SPEC $AT3E4" ;;  # round 1's rate
    rope-spec-ft10) described "SPEC's recipe" "finetune 10 epochs at 6e-4" \
      "--variants rope --set $SPEC finetune:train.epochs=10 finetune:train.learning_rate=6e-4" ;;
    rope-spec-ft20) described "SPEC's recipe" "finetune 20 epochs" "--variants rope --set $SPEC finetune:train.epochs=20 $AT3E4" ;;
    rope-spec-ftlr1e-3) described "SPEC's recipe" "finetune at 1e-3" \
      "--variants rope --set $SPEC finetune:train.learning_rate=1e-3" ;;
    rope-spec-ft20lr1e-3) described "SPEC's recipe" "finetune 20 epochs at 1e-3" \
      "--variants rope --set $SPEC finetune:train.epochs=20 finetune:train.learning_rate=1e-3" ;;
    # finetuning knobs on vanilla-spec's pretraining, configs/cpu/'s own: at 360 epochs it recalls about 40% of the
    # held-out people's places from their own text (rope-spec at 100 epochs: 3%), so a knob has stored facts to reach
    vanilla-spec-ft2) described "SPEC's recipe" "finetune 2 epochs" "--variants vanilla --set $SPEC finetune:train.epochs=2 $AT3E4" ;;
    vanilla-spec-ftlr1e-4) described "SPEC's recipe" "finetune at 1e-4" \
      "--variants vanilla --set $SPEC finetune:train.learning_rate=1e-4" ;;
    vanilla-spec-ftlr3e-4) described "SPEC's recipe" "finetune at 3e-4" "--variants vanilla --set $SPEC $AT3E4" ;;  # configs/cpu/'s until then
    vanilla-spec-ftlr1e-3) described "SPEC's recipe" "finetune at 1e-3" \
      "--variants vanilla --set $SPEC finetune:train.learning_rate=1e-3" ;;
    vanilla-spec-ftlr3e-5) described "SPEC's recipe" "finetune at 3e-5" \
      "--variants vanilla --set $SPEC finetune:train.learning_rate=3e-5" ;;
    vanilla-spec-ft10lr1e-4) described "SPEC's recipe" "finetune 10 epochs at 1e-4" \
      "--variants vanilla --set $SPEC finetune:train.epochs=10 finetune:train.learning_rate=1e-4" ;;
    vanilla-spec-ft2lr1e-4) described "SPEC's recipe" "finetune 2 epochs at 1e-4" \
      "--variants vanilla --set $SPEC finetune:train.epochs=2 finetune:train.learning_rate=1e-4" ;;
    vanilla-spec-ft10) described "SPEC's recipe" "finetune 10 epochs at 6e-4" \
      "--variants vanilla --set $SPEC finetune:train.epochs=10 finetune:train.learning_rate=6e-4" ;;
    vanilla-spec-ft20) described "SPEC's recipe" "finetune 20 epochs" \
      "--variants vanilla --set $SPEC finetune:train.epochs=20 $AT3E4" ;;
    # finetuning with replay of the documents' span corruption among the questions, and its schedule without replay
    vanilla-spec-ftreplay) described "SPEC's recipe" "finetune with replay 0.5, 10 epochs at 3e-4 decaying" \
      "--variants vanilla --set $SPEC finetune:data.replay=0.5 $DECAY" ;;
    vanilla-spec-ftreplay7) described "SPEC's recipe" "finetune with replay 0.7, 10 epochs at 3e-4 decaying" \
      "--variants vanilla --set $SPEC finetune:data.replay=0.7 $DECAY" ;;
    vanilla-spec-ftreplay85) described "SPEC's recipe" "finetune with replay 0.85, 10 epochs at 3e-4 decaying" \
      "--variants vanilla --set $SPEC finetune:data.replay=0.85 $DECAY" ;;  # replay's own rate, toward continued pretraining
    # replay on the other pretrainings: rope's, and salient masking's with salient spans replayed (the infill form it stores in)
    rope-spec-ftreplay7) described "SPEC's recipe" "finetune with replay 0.7, 10 epochs at 3e-4 decaying" \
      "--variants rope --set $SPEC finetune:data.replay=0.7 $DECAY" ;;
    vanilla-salient-ftreplay7) described "salient masking" "finetune with salient replay 0.7, 10 epochs at 3e-4 decaying" \
      "--variants vanilla --set $SPEC pretrain:data.masking=salient finetune:data.replay=0.7 finetune:data.masking=salient $DECAY" ;;
    vanilla-spec-ftdecay) described "SPEC's recipe" "finetune 10 epochs at 3e-4 decaying, no replay" \
      "--variants vanilla --set $SPEC $DECAY" ;;
    # issue 14's storage recipe, configs/cpu/'s until issue 26 (its 100-epoch point ran as "configs-cpu")
    vanilla-storage) described "the storage recipe of issue 14 (text + question mix + name-anchored)" "" \
      "--variants vanilla --set $STORAGE" ;;
    *) echo "error: unknown candidate '$1' (known: ${ALL[*]})" >&2
       return 2 ;;
  esac
}
pretraining_of() {  # the candidate whose pretraining runs a candidate finetunes (itself unless it only changes finetuning)
  case $1 in
    *-spec-ft* | *-salient-ft*) echo "${1%%-ft*}" ;;
    *) echo "$1" ;;
  esac
}
ALL=(vanilla-spec rope-spec rope-spec-lr1e-3 rope-salient vanilla-salient rope-spec-ft2 rope-spec-ftlr1e-4 rope-spec-ftlr3e-4 rope-spec-ft10 rope-spec-ft20
     rope-spec-ftlr1e-3 rope-spec-ft20lr1e-3 vanilla-spec-ft2 vanilla-spec-ftlr1e-4 vanilla-spec-ftlr3e-4 vanilla-spec-ftlr1e-3 vanilla-spec-ft10
     vanilla-spec-ft20 vanilla-spec-ftlr3e-5 vanilla-spec-ft10lr1e-4 vanilla-spec-ft2lr1e-4
     vanilla-spec-ftreplay vanilla-spec-ftreplay7 vanilla-spec-ftreplay85 vanilla-spec-ftdecay rope-spec-ftreplay7
     vanilla-salient-ftreplay7 vanilla-storage)
CANDIDATES=("${@:-${ALL[@]}}")
for name in "${CANDIDATES[@]}"; do candidate "$name" > /dev/null; done  # every name checked before anything runs

SELECTION=${SELECTION:-$OUT/selection$HOLDOUT}  # the split's folder (made here unless it exists)
[[ -f $SELECTION/selection.json ]] || "$PY" -m data.selection "$DATA" "$SELECTION" --holdout "$HOLDOUT" --seed 0
DOCUMENTS=$(grep -c . "$SELECTION/wiki.txt")

side_by_side() {  # side_by_side OUT ARGS...: one sweep per seed, each on one thread, at the same time
  local out=$1 pids=() status=0; shift
  mkdir -p "$out"
  for seed in $SEEDS; do
    OMP_NUM_THREADS=1 "$PY" -m experiments.sweep configs/cpu --data "$SELECTION" --out "$out" --seeds "$seed" \
      --procs 1 "$@" > "$out/seed$seed.out" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  (( status == 0 )) || { echo "error: a sweep into $out failed; see $out/seed*.out" >&2; return 1; }
  # records the whole grid in sweep.json (every run is done, so nothing runs again)
  OMP_NUM_THREADS=1 "$PY" -m experiments.sweep configs/cpu --data "$SELECTION" --out "$out" --seeds $SEEDS --procs 1 "$@" \
    > "$out/grid.out" 2>&1
}

pretrained() {  # pretrained NAME EPOCHS: whether every seed's pretraining of that point has its export
  local seed
  for seed in $SEEDS; do
    [[ -f $OUT/$1-$2/${1%%-*}/seed$seed/pretrain/export/model.safetensors ]] || return 1
  done
}

point() {  # point NAME EPOCHS: one candidate at one budget, into OUT/NAME-EPOCHS (skipped where done)
  local name=$1 epochs=$2 base borrow=() args about
  base=$(pretraining_of "$name")
  if [[ $base != "$name" ]]; then
    # its pretraining first, where missing (a finished one is left alone: its finetune may be of an older configs/cpu/)
    pretrained "$base" "$epochs" || point "$base" "$epochs"
    borrow=(--pretrained-from "$OUT/$base-$epochs")
  fi
  mapfile -t about < <(candidate "$name")
  read -r -a args <<< "${about[2]}"
  echo "$(date -u +%FT%TZ) $name, $epochs epochs -> $OUT/$name-$epochs"
  side_by_side "$OUT/$name-$epochs" --label "${name%%-*}, ${about[0]}, $epochs epochs${about[1]:+, ${about[1]}}" \
    --settings pretrained "${borrow[@]}" \
    "${args[@]}" --set train.log_every=100 $EXTRA \
    "pretrain:train.epochs=$epochs" "pretrain:train.final_tokens=$((epochs * DOCUMENTS * 79))"
}

swept=()
for name in "${CANDIDATES[@]}"; do
  for epochs in $BUDGETS; do
    point "$name" "$epochs"
    swept+=("$OUT/$name-$epochs")
  done
done
for variant in $( ((SCRATCH)) && printf '%s\n' "${CANDIDATES[@]}" | sed 's/-.*//' | sort -u); do
  out=$OUT/scratch-$variant
  echo "$(date -u +%FT%TZ) no pretraining, $variant -> $out"
  side_by_side "$out" --label "$variant, no pretraining" --settings scratch --variants "$variant" \
    --set train.log_every=100 $EXTRA
  swept+=("$out")
done
"$PY" -m experiments.report "${swept[@]}" --out "$OUT/report.md"
