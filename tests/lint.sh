#!/usr/bin/env bash
# lint.sh: style and static analysis as tests (ctest -L lint).
#   tests/lint.sh format            clang-format --dry-run -Werror on every C file we own
#   tests/lint.sh cppcheck BUILDDIR cppcheck (warning, performance, portability); the generated
#                                   protobuf header is left out (it is not our code)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
mapfile -t files < <(find common services tools bench tests -name '*.[ch]' -not -path '*/build*' | sort)
case ${1:-} in
  format)
    command -v clang-format >/dev/null || { echo "lint: clang-format is not installed" >&2; exit 1; }
    clang-format --dry-run -Werror "${files[@]}"
    echo "lint: clang-format: ${#files[@]} files clean"
    ;;
  cppcheck)
    command -v cppcheck >/dev/null || { echo "lint: cppcheck is not installed" >&2; exit 1; }
    build=${2:?usage: lint.sh cppcheck BUILDDIR}
    # varFuncNullUB: rd_log() ends its key/value list with NULL; glibc defines NULL as
    # ((void *)0), so the sentinel is a pointer on every platform we build for.
    cppcheck -q --error-exitcode=1 --suppress=varFuncNullUB --inline-suppr --enable=warning,performance,portability \
      --suppress=missingIncludeSystem --suppress=missingInclude -D__GNUC__ -Icommon -Itools \
      common services tools bench
    echo "lint: cppcheck: clean"
    ;;
  *)
    echo "usage: tests/lint.sh format | cppcheck BUILDDIR" >&2
    exit 2
    ;;
esac
