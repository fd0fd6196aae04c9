#!/usr/bin/env bash
# Runs test files one node process each, with a time limit per file, and
# prints one closing line "N passed, N failed" for the whole run. A file
# whose process hangs past the limit is run once more before it counts as
# failed: on Node.js 20 a test process started with `--import tsx` has been
# seen to stop for good at start-up, waiting on its module loader thread.
set -uo pipefail

readonly FILE_TIMEOUT="${TEST_FILE_TIMEOUT:-300}"
output=$(mktemp)
trap 'rm -f "$output"' EXIT

passed=0
failed=0
failed_files=()
for file in "$@"; do
  for attempt in 1 2; do
    timeout --kill-after=10 "$FILE_TIMEOUT" node --import tsx --test --test-reporter=spec "$file" >"$output" 2>&1
    status=$?
    cat "$output"
    if [ "$status" -ne 124 ] && [ "$status" -ne 137 ]; then
      break
    fi
    printf 'run-test-files: %s did not finish within %s s (attempt %s)\n' "$file" "$FILE_TIMEOUT" "$attempt" >&2
  done

  file_passed=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$output" | tail -n 1)
  file_failed=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$output" | tail -n 1)
  passed=$((passed + ${file_passed:-0}))
  failed=$((failed + ${file_failed:-0}))
  if [ "$status" -ne 0 ]; then
    failed_files+=("$file")
    # A file that failed without reporting a failed test (a crash, a hang) still counts once.
    if [ "${file_failed:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
  fi
done

if [ "${#failed_files[@]}" -gt 0 ]; then
  printf 'failed files:\n' >&2
  printf '  %s\n' "${failed_files[@]}" >&2
fi
echo "${passed} passed, ${failed} failed"
[ "${#failed_files[@]}" -eq 0 ]
