#!/usr/bin/env bash
# The test command: starts the real servers (RabbitMQ, PostgreSQL, an S3 server) on loopback and runs every test.
# Endpoints already set in WASTE_TEST_* variables are used as they are (e.g. servers you run yourself).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash tests/tooling/start-services.sh)"
bash tests/tooling/audit.sh
dotnet test WasteClassifier.sln --logger "console;verbosity=normal" "$@"
