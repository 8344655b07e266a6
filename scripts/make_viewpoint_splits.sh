#!/usr/bin/env bash
# The synthetic splits the crop viewpoint stage's model card reports on (models/MODEL_CARD.md),
# regenerated exactly (scene i depends only on the seed and i; marked world, 256x256):
#   val_s2m      seed 2,    300 scenes (1,020 objects): the tuning split (best.pt, policy sweeps)
#   heldout_s1m  seed 1,    500 scenes (1,685 objects): the held-out split of every report
#   fresh_s41m   seed 41,   500 scenes (1,774 objects): never used for training or tuning
#   train_s20m   seed 20, 24,000 scenes  } version 6's training scenes (162,081 crops)
#   train_s21m   seed 21, 24,000 scenes  }
# usage: scripts/make_viewpoint_splits.sh OUTPUT_DIR [NAME ...]   (default: all five, small ones first)
# environment: WORKERS (generate_data processes, default 2), PYTHON (default .venv/bin/python).
# About 40 min on 2 cores for all five (~28 scenes/s); re-running keeps the finished shards.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OUTPUT_DIR [val_s2m|heldout_s1m|fresh_s41m|train_s20m|train_s21m ...]" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
out=$1
shift
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(val_s2m heldout_s1m fresh_s41m train_s20m train_s21m)
python=${PYTHON:-.venv/bin/python}
for name in "${names[@]}"; do
  case $name in
    val_s2m) scenes=300; seed=2 ;;
    heldout_s1m) scenes=500; seed=1 ;;
    fresh_s41m) scenes=500; seed=41 ;;
    train_s20m) scenes=24000; seed=20 ;;
    train_s21m) scenes=24000; seed=21 ;;
    *) echo "unknown split $name" >&2; exit 2 ;;
  esac
  echo "== $name: $scenes scenes, seed $seed"
  "$python" -m scene3d_ros.cli.generate_data --output "$out/$name" --workers "${WORKERS:-2}" \
    --set output.num_scenes=$scenes output.seed=$seed scene.surface_markings=true
done
