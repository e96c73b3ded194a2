#!/usr/bin/env bash
# A RabbitMQ virtual host of one benchmark run's own (bench/run.sh, bench/ab.sh). Runs that share the broker, with each
# other or with the tests, are not kept apart by their queue names: ModelPromoted and ClassificationsFinished go to
# exchanges named after their message type, so every deployment on a virtual host receives the others' events.
#   bash bench/rabbitmq-vhost.sh create NAME   creates NAME (letters, digits, - and _), gives the broker user
#                                              (WASTE_TEST_RABBITMQ_USER, guest) every permission on it, and prints the
#                                              virtual host to use: NAME, or / with a warning where none could be created
#   bash bench/rabbitmq-vhost.sh delete NAME   deletes NAME with everything in it (/ is left alone)
# Through rabbitmqctl where the broker runs on this machine (as root, or with password-less sudo), else through the
# management API (WASTE_TEST_RABBITMQ_HOST, port RABBITMQ_MANAGEMENT_PORT or 15672) where its plugin is enabled.
# tests/tooling/start-services.sh deletes those a killed run left behind (names wc-bench-SECONDS-N, wc-ab-SECONDS-N).
set -euo pipefail
action=${1:-}; name=${2:-}
# What create printed where it fell back.
[ "$action" = delete ] && [ "$name" = / ] && exit 0
[[ "$action" =~ ^(create|delete)$ && "$name" =~ ^[A-Za-z0-9_-]+$ ]] || {
  echo "usage: bash bench/rabbitmq-vhost.sh create|delete NAME (letters, digits, - and _)" >&2; exit 2; }
host=${WASTE_TEST_RABBITMQ_HOST:-localhost}
user=${WASTE_TEST_RABBITMQ_USER:-guest}
password=${WASTE_TEST_RABBITMQ_PASSWORD:-guest}
api="http://$host:${RABBITMQ_MANAGEMENT_PORT:-15672}/api"

# rabbitmqctl reaches only the broker on this machine, and needs its Erlang cookie (root's or the rabbitmq user's).
ctl=()
if [[ "$host" =~ ^(localhost|127\.0\.0\.1|::1)$ ]] && command -v rabbitmqctl > /dev/null; then
  if [ "$(id -u)" = 0 ]; then ctl=(rabbitmqctl); elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then ctl=(sudo -n rabbitmqctl); fi
fi
management() { curl -sf -o /dev/null --max-time 10 -u "$user:$password" "$@"; }

if [ "$action" = create ]; then
  if [ ${#ctl[@]} -gt 0 ] && "${ctl[@]}" -q add_vhost "$name" > /dev/null 2>&1 &&
     "${ctl[@]}" -q set_permissions -p "$name" "$user" '.*' '.*' '.*' > /dev/null 2>&1; then
    echo "$name"
  elif command -v curl > /dev/null && management -X PUT "$api/vhosts/$name" &&
       management -X PUT -H 'content-type: application/json' -d '{"configure":".*","write":".*","read":".*"}' "$api/permissions/$name/$user"; then
    echo "$name"
  else
    [ ${#ctl[@]} -gt 0 ] && "${ctl[@]}" -q delete_vhost "$name" > /dev/null 2>&1 || true
    echo "WARNING: could not create the RabbitMQ virtual host $name (neither rabbitmqctl as root nor the management API on $api): using /, where other runs on this broker receive this run's ModelPromoted and ClassificationsFinished events and it theirs" >&2
    echo /
  fi
else
  if [ ${#ctl[@]} -gt 0 ] && "${ctl[@]}" -q delete_vhost "$name" > /dev/null 2>&1; then
    :
  elif command -v curl > /dev/null && management -X DELETE "$api/vhosts/$name"; then
    :
  else
    echo "could not delete the RabbitMQ virtual host $name; tests/tooling/start-services.sh removes it within 6 hours" >&2
  fi
fi
