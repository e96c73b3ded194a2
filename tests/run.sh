#!/usr/bin/env bash
# The test command: starts the real servers (RabbitMQ, PostgreSQL, an S3 server) on loopback and runs every test.
# Endpoints already set in WASTE_TEST_* variables are used as they are (e.g. servers you run yourself).
set -euo pipefail
cd "$(dirname "$0")/.."
# Assigned first: `eval "$(…)"` alone would carry on, without endpoints, when a server did not start.
services="$(bash tests/tooling/start-services.sh)"
eval "$services"
bash tests/tooling/audit.sh
# The whole log is kept so that a failure is repeated at its end: CI shows only the last lines, and the
# integration tests' failures would otherwise scroll away under the unit tests that run after them.
log="$(mktemp -t wasteclassifier-tests.XXXXXX.log)"
set +e
dotnet test WasteClassifier.sln --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  bash tests/tooling/failed-tests.sh "$log"
fi
exit "$status"
