#!/usr/bin/env bash
# configs/cpu/ scored once (docs/results-cpu.md): the real dev file with three seeds, with and
# without pretraining, and the varied and scattered synthetic worlds, each sweep its own section.
#
#   PRETRAINED_FROM=runs/cpu-curves/vanilla-spec-360 bash experiments/cpu_final.sh
#
# The dev sweep is the README's command. Pretraining is label-free: it reads wiki.txt only (a
# selection split's wiki.txt is the real one, byte for byte), so the selection sweep that chose the
# recipe (experiments/cpu_curves.sh) already holds its pretraining runs. PRETRAINED_FROM names that
# sweep: the seeds it lacks pretrain there first, one at a time as 2 ranks of one thread (the machine
# alone: the pipeline's honest wall time; 2 ranks ran about 10% faster than one rank on 2 threads),
# and the dev sweep finetunes them (--pretrained-from: the configs must be equal, so configs/cpu/
# must be the recipe that sweep ran; the loader is world-size invariant, so 2 ranks read what 1
# did). Without it the dev sweep pretrains its own seeds. The worlds (python -m data.synthetic, about a tenth of the real corpus
# each) run one seed per core, one thread each, with the cosine ending at each world's own last token.
# Runs that finished are skipped, so the script continues where it stopped. The test file is never
# read.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-datasets/birthplaces}
OUT=${OUT:-runs/cpu-final}
VARIANT=${VARIANT:-vanilla}
SEEDS=${SEEDS:-0 1 2}
WORLD_SEEDS=${WORLD_SEEDS:-$SEEDS}  # the synthetic worlds' seeds (each a sweep of its own, one per core)
WORLDS=${WORLDS:-worlds}
STYLES=${STYLES:-varied scattered}
PRETRAINED_FROM=${PRETRAINED_FROM:-}
PREDICTIONS=${PREDICTIONS:-$OUT/predictions}  # each finetuned run's dev predictions, per sweep
EXTRA=${EXTRA:-}  # more --set overrides for every run (EXTRA="train.max_steps=2" rehearses the script)

fail() { echo "error: experiments/cpu_final.sh: $*" >&2; exit 2; }
[[ -f $DATA/wiki.txt ]] || fail "DATA=$DATA: no wiki.txt (a data set in the real format)"
# shellcheck disable=SC2086  # EXTRA is a word list on purpose
read -r EPOCHS TOKENS_PER_EXAMPLE < <("$PY" -c "
import sys
from launcher.config import load_config
# EXTRA as pretraining sees it: the plain overrides and the pretrain: ones
mine = [a.removeprefix('pretrain:') for a in sys.argv[1:] if a.startswith('pretrain:') or ':' not in a.split('=')[0]]
config = load_config('configs/cpu/pretrain.yaml', mine)
print(config.train.epochs, config.data.block_size - 1)" $EXTRA)

dev_sweep() {  # dev_sweep ARGS...: the README's command on DATA (callers add "${borrow[@]}" to finetune the lent pretraining)
  # shellcheck disable=SC2086
  "$PY" -m experiments.sweep configs/cpu --data "$DATA" --out "$OUT/dev" --variants "$VARIANT" --procs 2 \
    --label "dev, configs/cpu/" ${EXTRA:+--set $EXTRA} "$@"
}
borrow=()
if [[ -n $PRETRAINED_FROM ]]; then
  [[ -f $PRETRAINED_FROM/sweep.json ]] || fail "PRETRAINED_FROM=$PRETRAINED_FROM: no sweep.json (a sweep directory)"
  # that sweep's own grid, one item per line: scale, data, label, variants, settings, seeds, the seeds
  # whose VARIANT pretraining completed (its sweep.json lists a seed as soon as a run of it starts),
  # then its --set overrides
  lent_text=$("$PY" -c "
import json, sys
from pathlib import Path
from launcher.run_record import read_attempts
sweep = json.load(open(sys.argv[1]))
if sweep.get('pretrained_from'):
    sys.exit(f'its pretraining is {sweep[\"pretrained_from\"]}\'s (--pretrained-from): lend that sweep instead')
if sys.argv[2] not in sweep['variants']:
    sys.exit(f'it has no {sys.argv[2]} runs (variants: {\" \".join(sweep[\"variants\"])}); set VARIANT')
cells = Path(sys.argv[1]).parent / sys.argv[2]
done = [seed for seed in sweep['seeds']
        if any(a.get('completed') for a in read_attempts(cells / f'seed{seed}' / 'pretrain' / 'run.json'))]
if not done:
    sys.exit(f'none of its {sys.argv[2]} pretraining runs completed (seeds: {\" \".join(map(str, sweep[\"seeds\"]))})')
print(sweep['scale']); print(sweep['data'] or ''); print(sweep['label'])
for key in ('variants', 'settings', 'seeds'):
    print(' '.join(map(str, sweep[key])))
print(' '.join(map(str, done)))
for override in sweep['overrides']:
    print(override)" "$PRETRAINED_FROM/sweep.json" "$VARIANT" 2>&1) || fail "PRETRAINED_FROM=$PRETRAINED_FROM: $lent_text"
  mapfile -t lent <<< "$lent_text"
  selection=${lent[1]}
  cmp -s "$selection/wiki.txt" "$DATA/wiki.txt" \
    || fail "PRETRAINED_FROM=$PRETRAINED_FROM: its pretraining read $selection/wiki.txt, which is not $DATA/wiki.txt"
  borrow=(--pretrained-from "$PRETRAINED_FROM" --set "pretrain:data.corpus=$selection/wiki.txt"
          "pretrain:data.finetune=$selection/birth_places_train.tsv")
  # configs/cpu/ must be the recipe that sweep ran: checked on its completed seeds, in seconds, before any pretraining
  # shellcheck disable=SC2086
  dev_sweep "${borrow[@]}" --seeds ${lent[6]} --settings pretrained --dry-run > /dev/null
  # more seeds of that very sweep, one at a time on all cores (a seed it has is skipped; a new one
  # also finetunes on its split); its sweep.json records every seed throughout
  # shellcheck disable=SC2046,SC2086  # word lists on purpose
  lend=(-m experiments.sweep "${lent[0]}" --data "$selection" --out "$PRETRAINED_FROM" --variants ${lent[3]}
        --settings ${lent[4]} --procs 2 ${lent[2]:+--label "${lent[2]}"} ${lent[7]:+--set "${lent[@]:7}"}
        ${EXTRA:+--set $EXTRA} --seeds $(printf '%s\n' ${lent[5]} $SEEDS | sort -nu))
  echo "$(date -u +%FT%TZ) pretraining seeds ${SEEDS// /, } in $PRETRAINED_FROM (where it lacks them)"
  "$PY" "${lend[@]}" > "$PRETRAINED_FROM/final-lend.out" 2>&1 \
    || fail "a run in $PRETRAINED_FROM failed; see $PRETRAINED_FROM/final-lend.out"
fi

echo "$(date -u +%FT%TZ) dev: $DATA -> $OUT/dev"
mkdir -p "$OUT"
# With pretraining first, with nothing else on the machine: seed 2's finetune and evaluation complete
# the pipeline's honest time. Then the no-pretraining baseline (75 epochs from random weights), which
# borrows nothing; then the whole grid, recorded in its sweep.json (nothing runs again).
# shellcheck disable=SC2086
dev_sweep "${borrow[@]}" --seeds $SEEDS --settings pretrained
# shellcheck disable=SC2086
dev_sweep --seeds $SEEDS --settings scratch
# shellcheck disable=SC2086
dev_sweep "${borrow[@]}" --seeds $SEEDS > "$OUT/dev.out"

world_sweep() {  # world_sweep STYLE SEED...: configs/cpu/ on that world, on one thread
  local style=$1 documents final_tokens; shift
  documents=$(grep -c . "$WORLDS/$style/wiki.txt")
  final_tokens=$("$PY" -c "print(round($EPOCHS * $documents * $TOKENS_PER_EXAMPLE))")  # the world's own last token
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 "$PY" -m experiments.sweep configs/cpu --data "$WORLDS/$style" --out "$OUT/$style" \
    --variants "$VARIANT" --seeds "$@" --procs 1 --label "$style world, configs/cpu/" \
    --set "pretrain:train.final_tokens=$final_tokens" $EXTRA
}
for style in $STYLES; do
  [[ -f $WORLDS/$style/wiki.txt ]] || "$PY" -m data.synthetic "$WORLDS/$style" --seed 0 --style "$style" \
    --train 100 --dev 100 --test 50 --places 20
done
# every (world, seed) its own one-seed sweep, as many at once as there are cores, the largest world first
largest_first=$(for style in $STYLES; do echo "$(grep -c . "$WORLDS/$style/wiki.txt") $style"; done | sort -rn | cut -d' ' -f2)
echo "$(date -u +%FT%TZ) worlds: ${largest_first//$'\n'/, } -> $OUT/<world>"
slots=$(getconf _NPROCESSORS_ONLN) running=0 status=0  # (nproc would count OMP_NUM_THREADS)
trap 'kill $(jobs -p) 2>/dev/null' INT TERM  # an interrupted script leaves no sweep behind
for style in $largest_first; do
  for seed in $WORLD_SEEDS; do
    if (( running >= slots )); then wait -n || status=1; running=$(( running - 1 )); fi
    world_sweep "$style" "$seed" > "$OUT/$style-seed$seed.out" 2>&1 &
    running=$(( running + 1 ))
  done
done
while (( running > 0 )); do wait -n || status=1; running=$(( running - 1 )); done
(( status == 0 )) || fail "a world sweep failed; see $OUT/*-seed*.out"
for style in $STYLES; do  # each world's whole grid recorded in its sweep.json (nothing runs again)
  # shellcheck disable=SC2086
  world_sweep "$style" $WORLD_SEEDS > "$OUT/$style.out" 2>&1 || fail "recording $OUT/$style failed; see $OUT/$style.out"
done

sweeps=("$OUT/dev")
for style in $STYLES; do sweeps+=("$OUT/$style"); done
"$PY" -m experiments.report "${sweeps[@]}" --out "$OUT/report.md" --predictions "$PREDICTIONS"
echo "$(date -u +%FT%TZ) done: $OUT/report.md, predictions in $PREDICTIONS"
