#!/usr/bin/env bash
# Repeats, from a `dotnet test` console log, each failed test's name and the start of its error message,
# so that the end of a long log says what failed. Usage: failed-tests.sh LOG
set -euo pipefail
log="$1"
echo
echo "=== Failed tests (repeated from $log) ==="
# A failure's block is its "Failed Name [time]" line, then "Error Message:" and its lines up to "Stack Trace:".
awk '
  /^[[:space:]]+Failed [A-Za-z_][A-Za-z0-9_]*\.[A-Za-z0-9_.]+[ (\[]/ { print; inmsg = 0; shown = 0; next }
  /^[[:space:]]+Error Message:/ { inmsg = 1; next }
  /^[[:space:]]+Stack Trace:/ { inmsg = 0; next }
  inmsg && shown < 12 { print "    " $0; shown++ }
' "$log" | head -n 70
grep -E "^(Failed!|Total tests:|[[:space:]]+(Passed|Failed|Skipped):)" "$log" | tail -n 12 || true
