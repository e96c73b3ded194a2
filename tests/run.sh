#!/usr/bin/env bash
# The test command: starts the real servers (RabbitMQ, PostgreSQL, an S3 server) on loopback and runs every test.
# Endpoints already set in WASTE_TEST_* variables are used as they are (e.g. servers you run yourself).
set -euo pipefail
cd "$(dirname "$0")/.."
# Assigned first: `eval "$(…)"` alone would carry on, without endpoints, when a server did not start.
services="$(bash tests/tooling/start-services.sh)"
eval "$services"
bash tests/tooling/audit.sh
dotnet test WasteClassifier.sln --logger "console;verbosity=normal" "$@"
