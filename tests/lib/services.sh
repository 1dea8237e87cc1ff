# shellcheck shell=bash
# tests/lib/services.sh: start the five Redress services on free loopback ports, wired together,
# for shell tests that run under tests/lib/with-stack.sh (REDRESS_PG_DSN, REDRESS_REDIS_URL).
#
# Sourced after tests/lib/servers.sh. The caller sets, before calling anything here:
#   B         the build directory (services/<svc>/redress-<svc>)
#   ROOT      the source tree
#   T         a private directory: logs go to $T/<svc>.log
#   PROBLEMS  a file that collects what went wrong (for the caller's post-mortem)
#   say       a function that prints progress
# and may set SVC_EXTRA_ENV (an array of K=V added to every start, e.g. test settings).
#
# Functions:
#   pick_port VAR    a free port not yet handed out by this script, into VAR
#   start_svc SVC    starts redress-SVC (intake, classifier, dispatcher, escalation, reporting, in
#                    that order: each connects to the ones before it) and waits for its /healthz
#                    to answer; new ports when one was taken before the service could bind it
#   stop_svc SVC     SIGTERM, wait (15 s), then SIGKILL; no-op when not running
#   kill_svc SVC     SIGKILL, and reap it
#   restart_svc SVC  starts redress-SVC again on the ports of its last start (gateways and the other
#                    services keep their endpoints) and waits for /healthz; false when it does not
#                    come up within 30 s
# State, after start_svc: PID[svc], HTTP_PORT[svc], ZMQ[intake_router|intake_push|intake_pub|
# classifier_push|dispatcher_pub].

declare -A PID=() HTTP_PORT=() USED_PORT=() ZMQ=() ENV_OF=()

pick_port() {
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$(rd_free_port) || return 1
    [[ -z ${USED_PORT[$p]:-} ]] && break
  done
  USED_PORT[$p]=1
  printf -v "$1" '%s' "$p"
}

# svc_env SVC: the environment for one start of redress-SVC into SVC_ENV (fresh ports each time).
svc_env() {
  local svc=$1 up=${1^^} http a b c
  pick_port http
  HTTP_PORT[$svc]=$http
  SVC_ENV=("REDRESS_${up}_HTTP_BIND=127.0.0.1" "REDRESS_${up}_HTTP_PORT=$http")
  case $svc in
    intake)
      pick_port a && pick_port b && pick_port c
      ZMQ[intake_router]=tcp://127.0.0.1:$a ZMQ[intake_push]=tcp://127.0.0.1:$b ZMQ[intake_pub]=tcp://127.0.0.1:$c
      SVC_ENV+=("REDRESS_INTAKE_BIND=${ZMQ[intake_router]}" "REDRESS_INTAKE_PUSH_BIND=${ZMQ[intake_push]}"
        "REDRESS_INTAKE_PUB_BIND=${ZMQ[intake_pub]}")
      ;;
    classifier)
      pick_port a && pick_port b
      ZMQ[classifier_push]=tcp://127.0.0.1:$a
      SVC_ENV+=("REDRESS_CLASSIFIER_INTAKE_ENDPOINT=${ZMQ[intake_push]}" "REDRESS_CLASSIFIER_PUSH_BIND=${ZMQ[classifier_push]}"
        "REDRESS_CLASSIFIER_PUB_BIND=tcp://127.0.0.1:$b"
        "REDRESS_CLASSIFIER_RULES_FILE=$ROOT/deploy/config/rules.default.json")
      ;;
    dispatcher)
      pick_port a && pick_port b
      ZMQ[dispatcher_pub]=tcp://127.0.0.1:$b
      SVC_ENV+=("REDRESS_DISPATCHER_CLASSIFIER_ENDPOINT=${ZMQ[classifier_push]}"
        "REDRESS_DISPATCHER_EVENTS_ENDPOINT=${ZMQ[intake_pub]}"
        "REDRESS_DISPATCHER_PUSH_BIND=tcp://127.0.0.1:$a" "REDRESS_DISPATCHER_PUB_BIND=${ZMQ[dispatcher_pub]}")
      ;;
    escalation)
      pick_port a
      SVC_ENV+=("REDRESS_ESCALATION_EVENTS_ENDPOINT=${ZMQ[intake_pub]},${ZMQ[dispatcher_pub]}"
        "REDRESS_ESCALATION_PUB_BIND=tcp://127.0.0.1:$a")
      ;;
      # reporting binds only its HTTP port (reporting.http_port), set for every service above.
  esac
  SVC_ENV+=(${SVC_EXTRA_ENV[@]+"${SVC_EXTRA_ENV[@]}"})
  ENV_OF[$svc]=$(printf '%q ' "${SVC_ENV[@]}")
}

# wait_healthz SVC PID: true once /healthz answers (any status) while PID runs; 30 s at most.
wait_healthz() {
  local svc=$1 pid=$2 i code
  for ((i = 0; i < 300; i++)); do
    rd_pid_alive "$pid" || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:${HTTP_PORT[$svc]}/healthz" || true)
    if [[ $code =~ ^[1-5][0-9][0-9]$ ]] && rd_pid_alive "$pid"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

start_svc() {
  local svc=$1 bin=$B/services/$1/redress-$1 log=$T/$1.log try pid
  for try in 1 2 3 4 5; do
    svc_env "$svc"
    : >"$log"
    env "${SVC_ENV[@]}" "$bin" </dev/null >>"$log" 2>&1 &
    pid=$!
    PID[$svc]=$pid
    if wait_healthz "$svc" "$pid"; then
      say "$svc: pid $pid, /metrics on 127.0.0.1:${HTTP_PORT[$svc]}"
      return 0
    fi
    if rd_pid_alive "$pid"; then
      echo "$svc: its HTTP endpoint 127.0.0.1:${HTTP_PORT[$svc]} did not answer within 30 s" >>"$PROBLEMS"
      return 1
    fi
    wait "$pid" 2>/dev/null || true
    PID[$svc]=
    if ((try < 5)) && grep -qiE 'cannot bind|cannot listen|cannot start HTTP|address already in use' "$log"; then
      say "$svc: a port was taken before it could bind (try $try); trying new ports"
      continue
    fi
    echo "$svc: exited at start" >>"$PROBLEMS"
    return 1
  done
}

stop_svc() {
  rd_stop_pid "${PID[$1]:-}" 15 || true
  PID[$1]=
}

kill_svc() {
  local pid=${PID[$1]:-}
  [[ -n $pid ]] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PID[$1]=
}

restart_svc() {
  local svc=$1 pid
  local -a e
  eval "e=(${ENV_OF[$svc]:?restart_svc: $svc was never started})"
  env "${e[@]}" "$B/services/$svc/redress-$svc" </dev/null >>"$T/$svc.log" 2>&1 &
  pid=$!
  PID[$svc]=$pid
  wait_healthz "$svc" "$pid" || {
    echo "$svc: did not come back on its ports within 30 s" >>"$PROBLEMS"
    return 1
  }
}

# stop_all_svc: stop_svc for every service started so far.
stop_all_svc() {
  local svc
  for svc in "${!ENV_OF[@]}"; do stop_svc "$svc"; done
}

# post_mortem [FILE...]: for a failed test, on stderr: $PROBLEMS, the last lines of each FILE, and
# of the log of every service started so far.
post_mortem() {
  local f svc
  {
    echo "---- problems:"
    cat "$PROBLEMS" 2>/dev/null || true
    for f in "$@"; do
      echo "---- $f (last 10 lines):"
      tail -n 10 "$f" 2>/dev/null || true
    done
    for svc in "${!ENV_OF[@]}"; do
      echo "---- last 15 lines of the $svc log:"
      tail -n 15 "$T/$svc.log" 2>/dev/null || echo "  (none)"
    done
  } >&2
}

# svc_metric SVC NAME: a counter or gauge (NAME may carry its labels) from SVC's /metrics; ""
# when it cannot be read.
svc_metric() {
  curl -fsS --max-time 2 "http://127.0.0.1:${HTTP_PORT[$1]}/metrics" 2>/dev/null |
    awk -v n="$2" '$1 == n { print $2; exit }' || true
}
