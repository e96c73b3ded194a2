#!/usr/bin/env bash
# The benchmark: builds Release, starts RabbitMQ, PostgreSQL and the S3 server on loopback (as the tests do), then measures
# the raw model, decoding, and end to end through separate API and worker processes with 1 and 2 workers.
# Prints a Markdown table (also in $BENCH_OUT/bench.md, with each phase's report.{json,md,html}).
#   BENCH_SECONDS (30) per load phase, BENCH_MICRO_SECONDS (5) per micro-benchmark, BENCH_SATURATION_USERS (192), BENCH_WORKERS (1,2),
#   BENCH_WARMUP_SECONDS (45) of saturation load on each deployment before it is measured, BENCH_SERVERS_SCHED (batch) the
#   scheduling policy of the servers while it runs (see bench/servers-scheduling.sh; normal measures without).
#   Service settings pass through, e.g. Model__InferenceThreads=1 Worker__DecodeParallelism=1 bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
export BENCH_OUT="${BENCH_OUT:-$root/bench/results/$(date +%Y%m%d-%H%M%S)}"
export BENCH_DATASET="${BENCH_DATASET:-$root/../shared/datasets/waste-v1}"
# Assigned first: `eval "$(…)"` alone would carry on, without endpoints, when a server did not start.
services="$(bash tests/tooling/start-services.sh)"
eval "$services"
# The servers share the services' two cores here (deployed, they have cores of their own). On SCHED_BATCH a server that
# wakes for a request does not preempt the model's Run: it waits for its turn and handles what has arrived meanwhile.
# What the script could apply (batch, normal or unchanged) is what the table's heading reports.
BENCH_SERVERS_SCHED="$(bash bench/servers-scheduling.sh "${BENCH_SERVERS_SCHED:-batch}")"
export BENCH_SERVERS_SCHED
# A RabbitMQ virtual host of this run's own (its queue names alone would not keep other runs' events out; see
# bench/rabbitmq-vhost.sh), deleted at the end; a Messaging__RabbitMq__VirtualHost given is used as it is.
vhost=""
if [ -z "${Messaging__RabbitMq__VirtualHost:-}" ]; then
  vhost="wc-bench-$(date +%s)-$RANDOM"
  Messaging__RabbitMq__VirtualHost="$(bash bench/rabbitmq-vhost.sh create "$vhost")"
fi
export Messaging__RabbitMq__VirtualHost
trap 'bash bench/servers-scheduling.sh normal || true; [ -z "$vhost" ] || bash bench/rabbitmq-vhost.sh delete "$Messaging__RabbitMq__VirtualHost" || true' EXIT
dotnet build WasteClassifier.sln -c Release -v q -nologo >&2
# The build's compiler and MSBuild servers stay behind and use CPU for a while: stop them before measuring.
dotnet build-server shutdown >/dev/null 2>&1 || true
# As the Dockerfiles deploy them: ONNX Runtime's buffers on transparent huge pages, for the raw model figures measured in
# this process and for the services it starts alike. GLIBC_TUNABLES= (empty) measures without.
export GLIBC_TUNABLES="${GLIBC_TUNABLES-glibc.malloc.hugetlb=1}"
# Gen 0 is capped at 16 MiB by the build (runtimeconfig.json); DOTNET_GCGen0MaxBudget=0 measures with the runtime's own size.
export BENCH_API_DLL="$root/src/WasteClassifier.Api/bin/Release/net10.0/WasteClassifier.Api.dll"
export BENCH_WORKER_DLL="$root/src/WasteClassifier.Worker/bin/Release/net10.0/WasteClassifier.Worker.dll"
mkdir -p "$BENCH_OUT"
dotnet "$root/bench/WasteClassifier.Bench/bin/Release/net10.0/WasteClassifier.Bench.dll" "$@"
echo "reports: $BENCH_OUT" >&2
