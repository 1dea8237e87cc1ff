#!/usr/bin/env bash
# run.sh: build Redress and run its whole test suite; the README's test command and what CI runs.
#
# Tests start their own PostgreSQL and Redis through tests/lib/with-stack.sh, so nothing needs
# to be running beforehand (and a running deploy/local stack is not touched).
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: tests/run.sh [CTEST ARGS...]

Installs missing packages and builds (deploy/local/bootstrap.sh), then runs
  ctest --test-dir BUILD_DIR --output-on-failure -j2 [CTEST ARGS...]
and exits with ctest's status. Arguments go to ctest, e.g.:
  tests/run.sh -L unit          only tests labelled "unit"
  tests/run.sh -R intake -V     tests matching "intake", verbosely

Environment:
  REDRESS_BUILD_DIR     build directory (default: build, or build-asan with REDRESS_SANITIZE=1)
  REDRESS_SANITIZE=1    build and test with AddressSanitizer + UBSan (-DREDRESS_SANITIZE=ON)
  REDRESS_CMAKE_ARGS    extra cmake configure arguments
  REDRESS_SKIP_BUILD=1  test the existing build as it is
  REDRESS_CTEST_JOBS    parallel tests (default 2)
EOF_USAGE
}

case ${1:-} in
  -h | --help) usage; exit 0 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ ${REDRESS_SANITIZE:-0} == 1 ]]; then
  build_dir=${REDRESS_BUILD_DIR:-build-asan}
  export REDRESS_CMAKE_ARGS="-DREDRESS_SANITIZE=ON${REDRESS_CMAKE_ARGS:+ $REDRESS_CMAKE_ARGS}"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  build_dir=${REDRESS_BUILD_DIR:-build}
fi

"$root/deploy/local/bootstrap.sh" "$build_dir"
[[ -f $build_dir/CTestTestfile.cmake ]] ||
  { printf 'run: error: %s is not a configured build (no CTestTestfile.cmake)\n' "$build_dir" >&2; exit 1; }

printf 'run: ctest in %s\n' "$build_dir" >&2
exec ctest --test-dir "$build_dir" --output-on-failure -j"${REDRESS_CTEST_JOBS:-2}" "$@"
