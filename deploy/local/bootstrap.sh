#!/usr/bin/env bash
# bootstrap.sh: install the Debian packages Redress needs, then configure and build it.
#
# Shared by deploy/local/up.sh and tests/run.sh so that "run the stack" and "run the tests" set up
# a fresh machine the same way. Installing is skipped when everything in packages.txt is present,
# so re-runs cost one dpkg-query.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/local/bootstrap.sh [--no-install] [--no-build] [BUILD_DIR]

1. Installs the Debian packages listed in deploy/local/packages.txt that are missing
   (apt-get; needs root or password-less sudo, never prompts, so it works in CI).
2. Configures and builds the project into BUILD_DIR (default: build, relative to the repo root):
     cmake -S . -B BUILD_DIR -DCMAKE_BUILD_TYPE=RelWithDebInfo $REDRESS_CMAKE_ARGS
     cmake --build BUILD_DIR -j$(nproc)

Options:
  --no-install  do not check or install packages   (same as REDRESS_SKIP_INSTALL=1)
  --no-build    do not configure or build          (same as REDRESS_SKIP_BUILD=1)
  -h, --help    show this help

Environment:
  REDRESS_CMAKE_ARGS  extra arguments for the configure step, e.g. "-DREDRESS_WERROR=OFF"
EOF
}

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() {
  printf 'bootstrap: error: %s\n' "$*" >&2
  exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
install=1
build=1
[[ ${REDRESS_SKIP_INSTALL:-0} == 1 ]] && install=0
[[ ${REDRESS_SKIP_BUILD:-0} == 1 ]] && build=0
build_dir=
while (($#)); do
  case $1 in
    --no-install) install=0; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *) [[ -z $build_dir ]] || die "only one BUILD_DIR, please (got '$build_dir' and '$1')"; build_dir=$1; shift ;;
  esac
done
build_dir=${build_dir:-build}
cd "$root"

install_packages() {
  local list=$root/deploy/local/packages.txt p status missing=()
  local pkgs
  [[ -r $list ]] || die "cannot read $list"
  mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$list")
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "warning: no dpkg-query, so not a Debian-like system; not installing anything."
    say "Make sure the equivalents of these are installed: ${pkgs[*]}"
    return 0
  fi
  # One dpkg-query for all (it is slow to start); unknown packages are simply not listed.
  local -A installed=()
  while read -r p status; do
    [[ $status == installed ]] && installed[${p%%:*}]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null || true)
  for p in "${pkgs[@]}"; do
    [[ -n ${installed[$p]:-} ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0

  # No terminal in CI: never ask, keep existing config files, wait for a busy dpkg lock.
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ((EUID != 0)); then
    # Not root: only a sudo that needs no password will do; we never prompt.
    if ! { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
      die "missing Debian packages: ${missing[*]}
Install them as root, then re-run:
  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    fi
    apt=(sudo -n "${apt[@]}")
  fi
  say "installing missing packages: ${missing[*]}"
  "${apt[@]}" update </dev/null || die "apt-get update failed (see above)"
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null ||
    die "apt-get install failed for: ${missing[*]} (see above)"
  # The postgresql and redis-server packages may start system services on ports 5432 and 6379;
  # Redress never uses those, its servers run on their own ports.
}

build_project() {
  local extra=()
  command -v cmake >/dev/null 2>&1 || die "cmake not found (it is in packages.txt: run without --no-install)"
  if [[ -n ${REDRESS_CMAKE_ARGS:-} ]]; then
    read -r -a extra <<<"$REDRESS_CMAKE_ARGS"
  fi
  say "configuring into $build_dir"
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${extra[@]}" ||
    die "cmake configure failed (see above); to start afresh: rm -rf $build_dir"
  say "building $build_dir"
  cmake --build "$build_dir" -j"$(nproc)" || die "build failed (see the compiler errors above)"
}

((install)) && install_packages
((build)) && build_project
exit 0
