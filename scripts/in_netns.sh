#!/usr/bin/env bash
# Run a command inside a private network namespace with only loopback up, so no DDS (or any)
# traffic can leave this machine. Falls back to running the command directly, with a notice,
# where namespaces are not permitted (non-root without user namespaces); the ROS processes still
# restrict discovery to localhost through ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST.
# usage: scripts/in_netns.sh CMD [ARGS...]
set -uo pipefail
if [ "${SCENE3D_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
if unshare -n true 2>/dev/null; then
  exec unshare -n bash -c 'ip link set lo up && export SCENE3D_IN_NETNS=1 && exec "$@"' bash "$@"
elif unshare -rn true 2>/dev/null; then
  exec unshare -rn bash -c 'ip link set lo up && export SCENE3D_IN_NETNS=1 && exec "$@"' bash "$@"
else
  echo "[in_netns] network namespaces unavailable here: running without one (discovery stays on localhost)" >&2
  exec "$@"
fi
