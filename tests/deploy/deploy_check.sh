#!/usr/bin/env bash
# deploy_check.sh: the ctest "deploy_manifests" -- checks deploy/systemd and deploy/k8s, then
# proves the checks can fail: each of a few broken copies (a bad directive, too short a stop
# timeout, a missing probe, a port that differs from the config, an undocumented key) must be
# refused. Exit 0 = all good, 1 = a problem (printed), 77 = a tool is missing (skip).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
py=/usr/bin/python3
if ! { [[ -x $py ]] && $py -c 'import yaml' 2>/dev/null; }; then
  echo "deploy_check: SKIP: /usr/bin/python3 with PyYAML (package python3-yaml) is needed" >&2
  exit 77
fi
command -v systemd-analyze >/dev/null 2>&1 || {
  echo "deploy_check: SKIP: systemd-analyze (package systemd) is needed" >&2
  exit 77
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/deploy-check.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failed=0

echo "== deploy/systemd"
"$here/check_systemd.sh" "$root/deploy/systemd" || failed=1
echo "== deploy/k8s"
$py "$here/check_k8s.py" "$root/deploy/k8s" "$root/docs/configuration.md" || failed=1

# must_fail NAME KIND DIR PATTERN: the checker of KIND (systemd|k8s) must refuse DIR, with a
# message matching PATTERN (grep -E), so that it is refused for the reason planted.
must_fail() {
  local name=$1 kind=$2 dir=$3 pattern=$4 rc=0
  if [[ $kind == systemd ]]; then
    "$here/check_systemd.sh" "$dir" >"$scratch/out" 2>&1 || rc=$?
  else
    $py "$here/check_k8s.py" "$dir" "$root/docs/configuration.md" >"$scratch/out" 2>&1 || rc=$?
  fi
  if [[ $rc == 1 ]] && grep -qE -- "$pattern" "$scratch/out"; then
    echo "self-test: refused as it should: $name ($(grep -m1 -E -- "$pattern" "$scratch/out"))"
  else
    echo "self-test: NOT refused (exit $rc): $name"
    cat "$scratch/out"
    failed=1
  fi
}
fresh() { # fresh KIND: a scratch copy of deploy/KIND
  rm -rf "${scratch:?}/$1"
  cp -r "$root/deploy/$1" "$scratch/$1"
  printf '%s\n' "$scratch/$1"
}

echo "== self-test: broken copies must be refused"
d=$(fresh systemd)
sed -i 's/^Restart=on-failure$/Restart=sometimes/' "$d/redress-dispatcher@.service"
must_fail "an invalid Restart= value" systemd "$d" "restart specifier"
d=$(fresh systemd)
sed -i 's/^TimeoutStopSec=.*/TimeoutStopSec=5/' "$d/redress-intake@.service"
must_fail "intake's TimeoutStopSec shorter than its drain" systemd "$d" "intake@.service: TimeoutStopSec"
d=$(fresh systemd)
sed -i 's/^Type=exec$/Tpye=exec/' "$d/redress-reporting@.service"
must_fail "a misspelt directive" systemd "$d" "Unknown key .Tpye."
d=$(fresh k8s)
$py - "$d/deployment-escalation.yaml" <<'PY'
import sys, yaml
p = sys.argv[1]
d = yaml.safe_load(open(p))
del d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
yaml.safe_dump(d, open(p, "w"))
PY
must_fail "a Deployment without a readiness probe" k8s "$d" "redress-escalation container escalation: no readinessProbe"
d=$(fresh k8s)
sed -i 's/^    http_port = 9403$/    http_port = 9999/' "$d/configmap.yaml"
must_fail "dispatcher.http_port differing from the container port" k8s "$d" "port http 9403 differs from dispatcher.http_port 9999"
d=$(fresh k8s)
sed -i 's/^    batch = 64$/    batch = 64\n    bacth = 32/' "$d/configmap.yaml"
must_fail "an undocumented config key" k8s "$d" "dispatcher.bacth is not documented"
d=$(fresh k8s)
sed -i 's#tcp://redress-classifier:7412#tcp://redress-classifer:7412#' "$d/configmap.yaml"
must_fail "an endpoint naming no Service" k8s "$d" "no Service redress-classifer"

if ((failed)); then
  echo "deploy_check: FAILED"
  exit 1
fi
echo "deploy_check: ok"
