#!/usr/bin/env bash
# Top-1 shape retrieval on CAD models never seen in training, end to end (docs/cad_library.md):
#   1. build_cad_library --extra-instances K: the default library (byte-identical: the models the
#      network was trained on, "seen") plus K new procedural instances per sub-type ("unseen",
#      listed as unseen_models in its library.json)
#   2. generate_data: a held-out synthetic split rendered from that library (seen and unseen objects)
#   3. build_shape_db: depth-view descriptors of every model of that library, by the checkpoint
#   4. evaluate: the pose tables plus Top-1 retrieval per seen / unseen split (evaluate reads the
#      unseen list from the dataset's library)
# usage: scripts/evaluate_unseen_models.sh CHECKPOINT OUTPUT_DIR
# environment: NUM_SCENES (default 500), SEED (data seed, default 2: training used 0, the shipped
#   validation split 1), EXTRA_INSTANCES (default 1), SETTING (both | gt_boxes | detected, default
#   both), DEVICE (auto | cpu | cuda, default auto), WORKERS (generate_data processes, default 1),
#   PYTHON (default .venv/bin/python of this checkout)
# Writes OUTPUT_DIR/cad_library_extended/, OUTPUT_DIR/data/val/, OUTPUT_DIR/shape_db.pt and the
# reports in OUTPUT_DIR/evaluation/. Re-running keeps what is up to date (library, data, database).
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 CHECKPOINT OUTPUT_DIR" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
CHECKPOINT=$(realpath "$1")
[ -f "$CHECKPOINT" ] || { echo "$0: no checkpoint at $1" >&2; exit 1; }
mkdir -p "$2"
OUT=$(cd "$2" && pwd)            # absolute: the dataset manifest records the library folder as given
LIBRARY=$OUT/cad_library_extended
NUM_SCENES=${NUM_SCENES:-500}
SEED=${SEED:-2}
EXTRA_INSTANCES=${EXTRA_INSTANCES:-1}
SETTING=${SETTING:-both}
DEVICE=${DEVICE:-auto}
WORKERS=${WORKERS:-1}

run() { printf '+ %s\n' "$*" >&2; "$@"; }

run "$PY" -m scene3d_ros.cli.build_cad_library --output "$LIBRARY" --extra-instances "$EXTRA_INSTANCES" --quiet
run "$PY" -m scene3d_ros.cli.generate_data --output "$OUT/data/val" --workers "$WORKERS" \
  --set "cad_library=$LIBRARY" "output.num_scenes=$NUM_SCENES" "output.seed=$SEED"
run "$PY" -m scene3d_ros.cli.build_shape_db --checkpoint "$CHECKPOINT" --output "$OUT/shape_db.pt" \
  --device "$DEVICE" --quiet --if-needed --set "shape_db.cad_library=$LIBRARY"
run "$PY" -m scene3d_ros.cli.evaluate --checkpoint "$CHECKPOINT" --data "$OUT/data" --split val \
  --setting "$SETTING" --device "$DEVICE" --output "$OUT/evaluation" \
  --set evaluate.retrieval.enabled=true "evaluate.retrieval.shape_db=$OUT/shape_db.pt"
echo "seen / unseen Top-1: $OUT/evaluation/evaluation_retrieval.md" >&2
