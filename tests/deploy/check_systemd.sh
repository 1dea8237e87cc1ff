#!/usr/bin/env bash
# check_systemd.sh: checks the units in deploy/systemd offline (no running systemd needed).
#
# Usage: tests/deploy/check_systemd.sh [UNIT_DIR]
#
# 1. `systemd-analyze verify` on an instance of every template (redress-<service>@1.service), on
#    redress-retention.service/.timer and redress.target, from a scratch copy whose ExecStart
#    binaries are stand-ins (verify insists that they exist). Any message it prints -- an unknown
#    directive, a bad value, a missing executable -- is a failure: it warns and exits 0 for most.
# 2. What every template must say: Restart=on-failure, a TimeoutStopSec longer than the
#    service's clean shutdown (intake drains up to 15 s), the hardening baseline, the per-instance
#    environment file (%i), PartOf= and WantedBy= redress.target; one template per service.
# Prints each problem; exits 1 if there is any, 77 when systemd-analyze is not installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
units=${1:-$here/../../deploy/systemd}
units=$(cd "$units" && pwd)
services=(intake classifier dispatcher escalation reporting)

command -v systemd-analyze >/dev/null 2>&1 || {
  echo "check_systemd: SKIP: systemd-analyze not installed (package systemd)" >&2
  exit 77
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/check-systemd.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/bin"
cp "$units"/*.service "$units"/*.timer "$units"/*.target "$scratch/"
for b in "${services[@]/#/redress-}" redressctl; do
  printf '#!/bin/sh\nexit 0\n' >"$scratch/bin/$b"
  chmod 755 "$scratch/bin/$b"
done
sed -i "s#/usr/local/bin/#$scratch/bin/#g" "$scratch"/*.service

problems=0
bad() {
  printf 'check_systemd: %s\n' "$*"
  problems=$((problems + 1))
}

verify=()
for s in "${services[@]}"; do verify+=("$scratch/redress-$s@1.service"); done
verify+=("$scratch/redress-retention.service" "$scratch/redress-retention.timer" "$scratch/redress.target")
for u in "${verify[@]}"; do
  if ! out=$(SYSTEMD_LOG_LEVEL=info systemd-analyze verify --man=no "$u" 2>&1); then
    bad "systemd-analyze verify $(basename "$u") failed: $out"
  elif [[ -n $out ]]; then
    bad "systemd-analyze verify $(basename "$u") complained: $out"
  fi
done

# key=value present (exactly that line) in a unit file
has() { grep -qxF -- "$2" "$1" || bad "$(basename "$1"): missing '$2'"; }
for s in "${services[@]}"; do
  f=$units/redress-$s@.service
  [[ -f $f ]] || { bad "no template redress-$s@.service"; continue; }
  for line in "Restart=on-failure" "RestartPreventExitStatus=2" "NoNewPrivileges=yes" "ProtectSystem=strict" \
    "ProtectHome=yes" "PrivateTmp=yes" "CapabilityBoundingSet=" "User=redress" "PartOf=redress.target" \
    "WantedBy=redress.target" "EnvironmentFile=-/etc/redress/$s-%i.env" \
    "ExecStart=/usr/local/bin/redress-$s --config /etc/redress/redress.conf"; do
    has "$f" "$line"
  done
  t=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$f")
  min=10
  [[ $s == intake ]] && min=20 # 15 s of draining, and then some
  [[ -n $t && $t -ge $min ]] || bad "redress-$s@.service: TimeoutStopSec must be at least ${min}s (is '${t:-unset}')"
done
has "$units/redress-retention.service" "ExecStart=/usr/local/bin/redressctl retention run"
has "$units/redress-retention.timer" "Unit=redress-retention.service"

if ((problems)); then
  echo "check_systemd: $problems problem(s) in $units"
  exit 1
fi
echo "check_systemd: ok: ${#verify[@]} units verified, ${#services[@]} templates checked"
