#!/usr/bin/env bash
# Puts the local servers that the benchmark runs beside the services (PostgreSQL, RabbitMQ, s3rver: the processes
# listening on 5432, 5672, 4369 and 9000, their child processes and all their threads) on the scheduling policy given:
#   bash bench/servers-scheduling.sh batch     SCHED_BATCH: a server that wakes waits for its turn instead of preempting
#                                              the thread running on the core, then handles what has arrived meanwhile
#   bash bench/servers-scheduling.sh normal    SCHED_OTHER, Linux's default
# It changes how often the servers are switched in, not their share of the cores. bench/run.sh and bench/ab.sh use it for
# BENCH_SERVERS_SCHED (batch unless set) and put the servers back to normal when they end. Needs root (the servers run as
# their own users); a server that is not running is skipped. Prints, on its standard output, the policy now in force for
# the benchmark's table: batch, normal, or unchanged (nothing could be changed: not root, no servers, or no ss/chrt).
set -euo pipefail
case "${1:-}" in
  batch) flag=-b ;;
  normal) flag=-o ;;
  *) echo "servers' scheduling must be batch or normal, not '${1:-}' (bench/servers-scheduling.sh, BENCH_SERVERS_SCHED)" >&2; exit 2 ;;
esac
if ! command -v ss > /dev/null || ! command -v chrt > /dev/null; then
  echo "servers' scheduling left as it is: ss (iproute2) or chrt (util-linux) is missing" >&2
  echo unchanged
  exit 0
fi
listeners=$(ss -Hltnp '( sport = :5432 or sport = :5672 or sport = :4369 or sport = :9000 )' | { grep -o 'pid=[0-9]*' || true; } | cut -d= -f2 | sort -u)
changed=0
for pid in $listeners; do
  # PostgreSQL's backends and RabbitMQ's helpers are children of the listening process; new backends inherit its policy.
  for p in $pid $(pgrep -P "$pid" || true); do
    chrt $flag -a -p 0 "$p" > /dev/null 2>&1 && changed=$((changed + 1))
  done
done
if [ "$changed" = 0 ]; then
  echo "servers' scheduling left as it is: no server process could be changed (root is needed)" >&2
  echo unchanged
else
  echo "servers on SCHED_$([ "$1" = batch ] && echo BATCH || echo OTHER): $changed processes" >&2
  echo "$1"
fi
