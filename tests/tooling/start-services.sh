#!/usr/bin/env bash
# Installs (where missing) and starts the real servers the integration tests use, on loopback:
# RabbitMQ (Debian's rabbitmq-server), PostgreSQL 15 (Debian's cluster) and s3rver (S3 API, stands in for MinIO);
# and installs the tools of the browser and deployment tests: Debian's chromium (driven by npm playwright-core,
# which cannot download a browser here) and docker-compose (parses the Compose file; no engine runs).
# Idempotent: a server that already answers is left alone, except this machine's RabbitMQ on 5672 without the TLS listener
# below (or with an older drop-in, or with certificates it just renewed, or serving another certificate than server.pem),
# which is stopped with rabbitmqctl and started again once to load it; a broker on 5672
# that is not this machine's rabbitmq-server (a container) is used as it is, without TLS. Prints the test endpoints as
# `export` lines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log() { echo "[services] $*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 "${3:-60}"); do port_open "$1" && return 0; sleep 1; done; log "$2 did not open port $1"; return 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq >&2; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >&2
}

# Queues and exchanges that the integration tests (TestServices.ClassifyQueue, TrainQueue), bench/run.sh (Deployment.cs) and
# bench/ab.sh declare under unique names, left behind
# by runs that did not end cleanly; thousands of them once made RabbitMQ's restart hang. A name's queue, fault queue,
# error and skipped queues go together, and only when none of them has a consumer (a run in progress keeps its own).
remove_stale_test_queues() {
  command -v rabbitmqctl >/dev/null || return 0
  local pattern='^(classify-(image-[0-9a-f]{10}|bench-[0-9a-f]{10}|ab-wc_ab_[0-9_]+)|train-model-[0-9a-f]{10})(-faults)?(_error|_skipped)?$'
  local removed ctl=(rabbitmqctl)
  # Never prompts: without root or password-less sudo the leftovers stay, and the tests still run.
  [ "$(id -u)" = 0 ] || ctl=(sudo -n rabbitmqctl)
  removed=$("${ctl[@]}" -q eval "P = \"$pattern\",
    Base = fun(N) -> iolist_to_binary(re:replace(N, \"(-faults)?(_error|_skipped)?$\", \"\")) end,
    Stale = fun(N) -> re:run(N, P, [{capture, none}]) =:= match end,
    Named = [{N, Q} || Q <- rabbit_amqqueue:list(), {resource, _, queue, N} <- [amqqueue:get_name(Q)]],
    Busy = [Base(N) || {N, Q} <- Named, rabbit_amqqueue:consumers(Q) =/= []],
    Qs = [Q || {N, Q} <- Named, Stale(N), not lists:member(Base(N), Busy)],
    [rabbit_amqqueue:delete(Q, false, false, <<\"start-services\">>) || Q <- Qs],
    Xs = [R || X <- rabbit_exchange:list(), {resource, _, exchange, N} = R <- [element(2, X)], Stale(N), not lists:member(Base(N), Busy)],
    [rabbit_exchange:delete(R, false, <<\"start-services\">>) || R <- Xs],
    length(Qs)." 2>/dev/null) || { log "could not list RabbitMQ's queues; stale test queues left"; return 0; }
  [ "$removed" = 0 ] || log "removed $removed idle test queues left by earlier runs"
}

# Virtual hosts that bench/run.sh and bench/ab.sh create (bench/rabbitmq-vhost.sh) and delete when they end, left by a
# run that was killed: their name holds their creation time, and one older than 6 hours belongs to a run that has ended.
remove_stale_bench_vhosts() {
  command -v rabbitmqctl >/dev/null || return 0
  local ctl=(rabbitmqctl) now removed=0 vhost
  [ "$(id -u)" = 0 ] || ctl=(sudo -n rabbitmqctl)
  now=$(date +%s)
  for vhost in $("${ctl[@]}" -q list_vhosts name 2>/dev/null | grep -E '^wc-(bench|ab)-[0-9]{10}-[0-9]+$' || true); do
    local created=${vhost#wc-*-}; created=${created%%-*}
    [ $((now - created)) -gt 21600 ] && "${ctl[@]}" -q delete_vhost "$vhost" >/dev/null 2>&1 && removed=$((removed + 1))
  done
  [ "$removed" = 0 ] || log "removed $removed benchmark virtual hosts left by earlier runs"
}

# Buckets that the integration tests (wc-<name>-<suffix>: wc-e2e-, wc-fault-, wc-store-, wc-svchealth-…), bench/run.sh
# (wc-bench-) and bench/ab.sh (wc-ab-) create under unique names in the local s3rver, which keeps them as folders: a
# benchmark's holds 0.3–0.5 GB of images, and a day of benchmarking left 14 GB. A bucket folder's time is when it was created (its objects go into
# subfolders), so one older than WASTE_S3_KEEP_MINUTES (360) belongs to a run that has ended.
remove_stale_test_buckets() {
  local data=$1 removed
  [ -d "$data" ] || return 0
  removed=$(find "$data" -mindepth 1 -maxdepth 1 -type d -mmin +"${WASTE_S3_KEEP_MINUTES:-360}" \
    -regextype posix-extended -regex '.*/wc-[a-z]+-[0-9a-z-]+' -print -exec rm -rf {} + | wc -l) || true
  [ "$removed" = 0 ] || log "removed $removed test buckets left by earlier runs from s3rver's folder"
}


# A TLS listener on 5671 beside the clear one, for the tests of Messaging:RabbitMq:UseTls: a throwaway CA and a server
# certificate for localhost and 127.0.0.1 that it signs, made in a folder of this script's own and reused while they are
# usable (rabbitmq_tls_renewal_reason), and a config drop-in (conf.d, read after rabbitmq.conf) that points the broker at
# them. Prints "changed" when it made new certificates or wrote the drop-in, which a running broker only reads when it starts.
rabbitmq_tls_dir=/etc/rabbitmq/wasteclassifier-tls
rabbitmq_tls_conf=/etc/rabbitmq/conf.d/90-wasteclassifier-tls.conf

# Why the certificates in $1 must be made again, or nothing when they can be kept: a missing or unreadable file, a CA or
# server certificate that expires within 30 days (the TLS tests then fail one day with "NotTimeValid"), a server
# certificate the CA did not sign, or a key that is not the certificate's.
rabbitmq_tls_renewal_reason() {
  local dir=$1 file days=30
  for file in ca.pem ca.key server.pem server.key; do
    [ -s "$dir/$file" ] || { echo "$file is missing"; return; }
  done
  for file in ca.pem server.pem; do
    as_root openssl x509 -in "$dir/$file" -noout >/dev/null 2>&1 || { echo "$file is not a readable certificate"; return; }
    as_root openssl x509 -in "$dir/$file" -noout -checkend $((days * 86400)) >/dev/null 2>&1 \
      || { echo "$file expires within $days days ($(as_root openssl x509 -in "$dir/$file" -noout -enddate 2>/dev/null))"; return; }
  done
  as_root openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null 2>&1 || { echo "server.pem is not signed by ca.pem"; return; }
  [ "$(as_root openssl pkey -in "$dir/server.key" -pubout 2>/dev/null)" = "$(as_root openssl x509 -in "$dir/server.pem" -noout -pubkey 2>/dev/null)" ] \
    || echo "server.key is unreadable or not server.pem's key"
}

# Why the broker must be restarted although its certificates are good, or nothing: the certificate it serves on port $1
# is not $2/server.pem. A renewal restarts the broker only in the run that makes the certificates; that run, interrupted
# before the restart or with a stop that failed, left it serving the old one while the tests trusted the new ca.pem. A
# listener that sends no certificate is left alone (logged): restarting a shared broker on a guess is worse.
rabbitmq_tls_served_mismatch() {
  local port=$1 dir=$2 served wanted
  wanted=$(as_root openssl x509 -in "$dir/server.pem" -noout -fingerprint -sha256 2>/dev/null) || return 0
  served=$(timeout 15 openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null) || true
  if [ -z "$served" ]; then
    log "could not read the certificate served on port $port; the broker is left running"
  elif [ "$served" != "$wanted" ]; then
    echo "port $port serves a certificate other than $dir/server.pem"
  fi
}

ensure_rabbitmq_tls() {
  local dir=$rabbitmq_tls_dir conf=$rabbitmq_tls_conf wanted renew
  renew=$(rabbitmq_tls_renewal_reason "$dir")
  if [ -n "$renew" ]; then
    log "making a throwaway CA and server certificate for RabbitMQ's TLS listener in $dir ($renew)"
    as_root mkdir -p "$dir"
    as_root openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=WasteClassifier test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null || return 1
    as_root openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null || return 1
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" | as_root tee "$dir/server.ext" >/dev/null
    as_root openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 3650 \
      -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null || return 1
    # The broker runs as rabbitmq and reads the key; the tests read only ca.pem.
    as_root chown -R rabbitmq:rabbitmq "$dir" || return 1
    as_root chmod 755 "$dir"; as_root chmod 644 "$dir/ca.pem" "$dir/server.pem"; as_root chmod 600 "$dir/server.key" "$dir/ca.key"
    # A running broker keeps the certificates it read at start: it is restarted to serve the new ones.
    echo changed
  fi
  wanted="# Written by WasteClassifier's tests/tooling/start-services.sh: a TLS listener for the integration tests.
listeners.ssl.default = 5671
ssl_options.cacertfile = $dir/ca.pem
ssl_options.certfile = $dir/server.pem
ssl_options.keyfile = $dir/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false"
  if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
    as_root mkdir -p "$(dirname "$conf")"
    printf '%s\n' "$wanted" | as_root tee "$conf" >/dev/null
    as_root chown -R rabbitmq:rabbitmq "$(dirname "$conf")" 2>/dev/null || true
    [ -n "$renew" ] || echo changed
  fi
}

start_rabbitmq() {
  # The Debian package may start it as a service; otherwise start it detached, as its own user, with every file handle
  # the hard limit allows: `su` resets the soft limit to 1024, and a broker that must recover more queues than it has
  # handles hangs at boot.
  port_open 5672 || as_root su rabbitmq -s /bin/sh -c \
    'ulimit -n "$(ulimit -Hn)"; cd /var/lib/rabbitmq && exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached' >&2 || true
  if ! wait_port 5672 RabbitMQ 180 || ! wait_port 5671 "RabbitMQ's TLS listener" 30; then
    tail -n 20 /var/log/rabbitmq/rabbit@*.log >&2 2>/dev/null || true
    exit 1
  fi
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
# makes the TLS listener's throwaway CA and certificate
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then log "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
# npm packages (s3rver, playwright-core) exactly as package-lock.json pins them.
if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/s3rver" ]; then
  log "installing npm tooling"
  (cd "$here" && npm ci --no-audit --no-fund --silent >&2)
fi

# This machine's own broker (Debian's rabbitmq-server, which rabbitmqctl reaches) answers `rabbitmqctl status`.
local_rabbitmq_node() { command -v rabbitmqctl >/dev/null && as_root timeout 30 rabbitmqctl -q status >/dev/null 2>&1; }

if [ -z "${WASTE_TEST_RABBITMQ_HOST:-}" ] && port_open 5672 && ! local_rabbitmq_node; then
  # Another broker holds 5672 (a container, say): used as it is, as before the TLS listener; no TLS listener is opened
  # in it, so the TLS tests skip (and fail on CI) unless WASTE_TEST_RABBITMQ_TLS_PORT and WASTE_TEST_RABBITMQ_CA name one.
  log "a RabbitMQ that is not this machine's rabbitmq-server answers on 5672: using it without a TLS listener"
  echo "export WASTE_TEST_RABBITMQ_HOST=localhost WASTE_TEST_RABBITMQ_PORT=5672 WASTE_TEST_RABBITMQ_USER=guest WASTE_TEST_RABBITMQ_PASSWORD=guest"
elif [ -z "${WASTE_TEST_RABBITMQ_HOST:-}" ]; then
  if ! command -v rabbitmq-server >/dev/null; then
    log "installing rabbitmq-server"
    apt_install rabbitmq-server
  fi
  if ! tls_changed=$(ensure_rabbitmq_tls); then
    log "could not make the TLS listener's certificates in $rabbitmq_tls_dir (openssl or chown failed)"
    exit 1
  fi
  stale_tls=""
  if ! port_open 5672; then
    start_rabbitmq
    as_root rabbitmq-diagnostics -q check_port_connectivity >&2 || true
  elif [ -n "$tls_changed" ] || ! port_open 5671 \
    || { stale_tls=$(rabbitmq_tls_served_mismatch 5671 "$rabbitmq_tls_dir"); [ -n "$stale_tls" ]; }; then
    # A broker already running reads the TLS drop-in and certificates only when it starts: restarted the first time,
    # after a renewal, and while it serves another certificate than server.pem (a renewal whose restart did not happen).
    log "restarting RabbitMQ to load its TLS listener${stale_tls:+ ($stale_tls)}"
    as_root rabbitmqctl -q stop >&2 || true
    for _ in $(seq 1 60); do port_open 5672 || break; sleep 1; done
    start_rabbitmq
  fi
  remove_stale_test_queues
  remove_stale_bench_vhosts
  echo "export WASTE_TEST_RABBITMQ_HOST=localhost WASTE_TEST_RABBITMQ_PORT=5672 WASTE_TEST_RABBITMQ_USER=guest WASTE_TEST_RABBITMQ_PASSWORD=guest"
  echo "export WASTE_TEST_RABBITMQ_TLS_PORT=5671 WASTE_TEST_RABBITMQ_CA=$rabbitmq_tls_dir/ca.pem"
fi

if [ -z "${WASTE_TEST_POSTGRES:-}" ]; then
  if ! port_open 5432; then
    log "starting PostgreSQL"
    as_root pg_ctlcluster 15 main start >&2
    wait_port 5432 PostgreSQL 60
  fi
  # TCP logins need a password; this is the documented development default, never a production secret.
  as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres';\"" >&2
  echo "export WASTE_TEST_POSTGRES='Host=localhost;Port=5432;Username=postgres;Password=postgres'"
fi

if [ -z "${WASTE_TEST_S3_ENDPOINT:-}" ]; then
  data="${TMPDIR:-/tmp}/wasteclassifier-s3"
  remove_stale_test_buckets "$data"
  if ! port_open 9000; then
    log "starting s3rver"
    mkdir -p "$data"
    nohup "$here/node_modules/.bin/s3rver" -d "$data" -a 127.0.0.1 -p 9000 --silent > "${TMPDIR:-/tmp}/wasteclassifier-s3rver.log" 2>&1 &
    wait_port 9000 s3rver 30
  fi
  echo "export WASTE_TEST_S3_ENDPOINT=localhost:9000 WASTE_TEST_S3_ACCESS_KEY=S3RVER WASTE_TEST_S3_SECRET_KEY=S3RVER"
fi
