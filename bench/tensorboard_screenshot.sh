#!/usr/bin/env bash
# A PNG of the TensorBoard dashboard for a run folder, taken with headless Chromium (docs/tensorboard.md).
#
#   bash bench/tensorboard_screenshot.sh RUN_DIR OUT.png [PAGE]
#
# RUN_DIR is given to tensorboard as --logdir: a run (its tensorboard/ is the one run shown) or a folder
# of runs (runs/demo/vanilla shows pretrain/tensorboard and finetune/tensorboard side by side). PAGE is
# the part of the URL after '#', by default the scalars tab filtered to the loss, the learning rate and
# the accuracy, which fit in one window; '#text' shows the sample predictions.
# TensorBoard listens on 127.0.0.1 only, on a port the kernel picks (--port 0), and is stopped on exit,
# its data-server child with it. Environment: PYTHON (default .venv/bin/python), CHROMIUM (chromium),
# WINDOW (1400,900), BUDGET (ms of virtual time the page gets to draw its charts, 15000).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: bash bench/tensorboard_screenshot.sh RUN_DIR OUT.png [PAGE]" >&2
    exit 2
fi
run_dir=$1
out=$2
page=${3:-"scalars&tagFilter=loss%7Clr%7Caccuracy"}
python=${PYTHON:-.venv/bin/python}
chromium=${CHROMIUM:-chromium}
[[ -d $run_dir ]] || { echo "no run folder $run_dir" >&2; exit 2; }
command -v "$chromium" > /dev/null || { echo "no $chromium (Debian: apt-get install chromium)" >&2; exit 2; }

log=$(mktemp)
# Its own session, so the whole process group (tensorboard and its data server) can be stopped.
setsid "$python" -m tensorboard.main --logdir "$run_dir" --host 127.0.0.1 --port 0 --reload_interval 0 \
    > "$log" 2>&1 &
server=$!
stop() {
    kill -TERM -- "-$server" 2> /dev/null || true
    wait "$server" 2> /dev/null || true
    rm -f "$log"
}
trap stop EXIT

# The URL from its banner; then wait until the event files are loaded, or the page shows no data.
url=
for _ in $(seq 300); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$log" | head -n 1 || true)
    [[ -n $url ]] && break
    kill -0 "$server" 2> /dev/null || { cat "$log" >&2; echo "tensorboard exited" >&2; exit 1; }
    sleep 0.1
done
[[ -n $url ]] || { cat "$log" >&2; echo "tensorboard printed no URL within 30 s" >&2; exit 1; }
"$python" - "$url" << 'EOF' || { cat "$log" >&2; exit 1; }
import json, sys, time, urllib.request
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    with urllib.request.urlopen(sys.argv[1] + "data/plugin/scalars/tags", timeout=10) as response:
        if any("train/loss" in tags for tags in json.load(response).values()):
            sys.exit(0)
    time.sleep(0.5)
sys.exit(f"no train/loss under {sys.argv[1]} within 60 s")
EOF

mkdir -p "$(dirname "$out")"
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="${WINDOW:-1400,900}" \
    --virtual-time-budget="${BUDGET:-15000}" --screenshot="$out" "$url#$page" 2> /dev/null
[[ -s $out ]] || { echo "chromium wrote no $out" >&2; exit 1; }
echo "$out: $(stat -c %s "$out") bytes, from $url#$page"
