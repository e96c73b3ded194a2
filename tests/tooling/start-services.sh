#!/usr/bin/env bash
# Installs (where missing) and starts the real servers the integration tests use, on loopback:
# RabbitMQ (Debian's rabbitmq-server), PostgreSQL 15 (Debian's cluster) and s3rver (S3 API, stands in for MinIO);
# and installs the tools of the browser and deployment tests: Debian's chromium (driven by npm playwright-core,
# which cannot download a browser here) and docker-compose (parses the Compose file; no engine runs).
# Idempotent: a server that already answers is left alone. Prints the test endpoints as `export` lines.
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

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then log "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
# npm packages (s3rver, playwright-core) exactly as package-lock.json pins them.
if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/s3rver" ]; then
  log "installing npm tooling"
  (cd "$here" && npm ci --no-audit --no-fund --silent >&2)
fi

if [ -z "${WASTE_TEST_RABBITMQ_HOST:-}" ]; then
  if ! port_open 5672; then
    if ! command -v rabbitmq-server >/dev/null; then
      log "installing rabbitmq-server"
      apt_install rabbitmq-server
    fi
    # The Debian package may start it as a service; otherwise start it detached.
    port_open 5672 || as_root rabbitmq-server -detached >&2 || true
    wait_port 5672 RabbitMQ 90
    as_root rabbitmq-diagnostics -q check_port_connectivity >&2 || true
  fi
  echo "export WASTE_TEST_RABBITMQ_HOST=localhost WASTE_TEST_RABBITMQ_PORT=5672 WASTE_TEST_RABBITMQ_USER=guest WASTE_TEST_RABBITMQ_PASSWORD=guest"
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
  if ! port_open 9000; then
    log "starting s3rver"
    data="${TMPDIR:-/tmp}/wasteclassifier-s3"
    mkdir -p "$data"
    nohup "$here/node_modules/.bin/s3rver" -d "$data" -a 127.0.0.1 -p 9000 --silent > "${TMPDIR:-/tmp}/wasteclassifier-s3rver.log" 2>&1 &
    wait_port 9000 s3rver 30
  fi
  echo "export WASTE_TEST_S3_ENDPOINT=localhost:9000 WASTE_TEST_S3_ACCESS_KEY=S3RVER WASTE_TEST_S3_SECRET_KEY=S3RVER"
fi
