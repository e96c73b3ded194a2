#!/usr/bin/env bash
# A quick A/B of one change in about 1.5 minutes, where bench/run.sh takes about 8 (on this project's 2-core machine):
# one Release API and one worker process on a fresh database, bucket, queue and virtual host against the local servers,
# a warm-up, then one measured phase. Prints the CPU each process
# spent per completed image and PostgreSQL's transactions and rows per image. Run it for each side of a change, in
# turns, several times: the machine is shared, so only differences well beyond run-to-run spread mean anything.
#
#   bash bench/ab.sh LABEL [ENV=VALUE ...]      e.g. bash bench/ab.sh lanes1 Model__InferenceLanes=1
#   bash bench/ab.sh 4k GLIBC_TUNABLES=         (the services run as the Dockerfiles set them; this measures without huge pages)
#   AB_LOAD="--rate 20" bash bench/ab.sh half   (default AB_LOAD="--users 192"; AB_WARMUP=40 and AB_SECONDS=25 seconds)
#   AB_IMAGES="--generate 32 --size 1920x1080" bash bench/ab.sh camera   (default: the dataset's images)
#   BENCH_SERVERS_SCHED=normal bash bench/ab.sh normal   (default batch, as bench/run.sh: see bench/servers-scheduling.sh)
# Needs a Release build: dotnet build -c Release WasteClassifier.sln
set -euo pipefail
cd "$(dirname "$0")/.."
label=${1:?usage: bash bench/ab.sh LABEL [ENV=VALUE ...]}; shift
# Assigned first: `eval "$(…)"` alone would carry on, without endpoints, when a server did not start.
services="$(bash tests/tooling/start-services.sh)"
eval "$services"
bash bench/servers-scheduling.sh "${BENCH_SERVERS_SCHED:-batch}" > /dev/null
out=${TMPDIR:-/tmp}/wasteclassifier-ab-$label; rm -rf "$out"; mkdir -p "$out"
admin="postgresql://postgres:postgres@localhost/postgres"
db=wc_ab_$(date +%s)_$RANDOM
psql "$admin" -qc "create database $db"
# A virtual host of its own: the queue name alone would not keep other runs' events out (see bench/rabbitmq-vhost.sh).
vhost=$(bash bench/rabbitmq-vhost.sh create "${db//_/-}")
port=18650
common=(Database__Provider=postgres "Database__ConnectionString=${WASTE_TEST_POSTGRES};Database=$db;SSL Mode=Disable"
  Messaging__Transport=rabbitmq Messaging__RabbitMq__Host=localhost Messaging__RabbitMq__VirtualHost=$vhost Messaging__ClassifyQueue=classify-ab-$db
  ObjectStore__Provider=minio ObjectStore__Endpoint=localhost:9000 ObjectStore__AccessKey=S3RVER ObjectStore__SecretKey=S3RVER
  ObjectStore__Bucket=wc-ab-${db//_/-} GLIBC_TUNABLES=glibc.malloc.hugetlb=1 DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production Metrics__Port=0)
(cd src/WasteClassifier.Api/bin/Release/net10.0 && exec env "${common[@]}" Urls=http://127.0.0.1:$port "$@" dotnet WasteClassifier.Api.dll) > "$out/api.log" 2>&1 &
api=$!
# The servers outlive the run: drop its database and virtual host on the way out (a queue on / goes at the next start-services.sh).
trap 'kill $api ${worker:-} 2>/dev/null || true; bash bench/servers-scheduling.sh normal || true; sleep 1; psql "$admin" -qc "drop database if exists $db with (force)" || true; bash bench/rabbitmq-vhost.sh delete "$vhost" || true' EXIT
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:$port/health/ready > /dev/null && break; sleep 1; done
(cd src/WasteClassifier.Worker/bin/Release/net10.0 && exec env "${common[@]}" "$@" dotnet WasteClassifier.Worker.dll) > "$out/worker.log" 2>&1 &
worker=$!
sleep 8

# The load generator's own CPU (user and system seconds, its whole run) goes to $out/NAME.cpu: it shares the cores too.
load() { local TIMEFORMAT='%U %S'; { time dotnet src/WasteClassifier.Cli/bin/Release/net10.0/wastectl.dll loadtest --target http://127.0.0.1:$port $1 \
  --duration $2 --drain 60 ${AB_IMAGES:---images ../shared/datasets/waste-v1} --out "$out/$3" > "$out/$3.log" 2>&1; } 2> "$out/$3.cpu"; }
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }                     # user + system ticks (1/100 s)
servers() { for p in $(pgrep -x postgres); do cpu "$p" 2>/dev/null; done | awk '{s+=$1} END {print s+0}'; }
broker() { for p in $(pgrep -x beam.smp); do cpu "$p" 2>/dev/null; done | awk '{s+=$1} END {print s+0}'; }
pgstat() { psql "$admin" -Atc "select xact_commit+xact_rollback, tup_fetched from pg_stat_database where datname='$db'"; }

load "--users 96" "${AB_WARMUP:-40}" warmup
a0=$(cpu $api); w0=$(cpu $worker); p0=$(servers); s0=$(cpu "$(pgrep -f s3rver | head -1)"); r0=$(broker); x0=$(pgstat); m0=$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat)
load "${AB_LOAD:---users 192}" "${AB_SECONDS:-25}" measured
a1=$(cpu $api); w1=$(cpu $worker); p1=$(servers); s1=$(cpu "$(pgrep -f s3rver | head -1)"); r1=$(broker); x1=$(pgstat); m1=$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8}' /proc/stat)
hwm=$(awk '/^VmHWM/{print int($2/1024)}' /proc/$worker/status)
python3 - "$out/measured/report.json" "$out/measured.cpu" <<PY
import json, sys
r = json.load(open(sys.argv[1])); n = r["counts"]["completed"]; e = r["latency_ms"]["end_to_end"]
loadgen = sum(float(v) for v in open(sys.argv[2]).read().split()) * 1000 / n
x0, x1 = [int(v) for v in "$x0".split("|")], [int(v) for v in "$x1".split("|")]
ms = lambda a, b: (b - a) * 10 / n
# null when sending stopped within the ramp (report.json's steady_not_measured says why)
steady = r["throughput"]["steady_completed_per_s"]
steady = "n/a" if steady is None else f"{steady:.2f}"
print(f"$label: {n} completed, {steady} images/s, e2e p50 {e['p50']:.0f} / p95 {e['p95']:.0f} ms; "
      f"CPU ms per image: API {ms($a0, $a1):.1f}, worker {ms($w0, $w1):.1f}, PostgreSQL {ms($p0, $p1):.1f}, s3rver {ms($s0, $s1):.1f}, RabbitMQ {ms($r0, $r1):.1f}, "
      f"load generator {loadgen:.2f} (its whole run), machine {ms($m0, $m1):.1f}; PostgreSQL per image: {(x1[0]-x0[0])/n:.1f} transactions, {(x1[1]-x0[1])/n:.1f} rows fetched; "
      f"worker peak memory $hwm MB")
PY
