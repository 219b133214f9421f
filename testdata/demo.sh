#!/usr/bin/env bash
# make demo: the DC/OS stateful-services tutorial, step by step, on real
# PostgreSQL, with an agent of its own on a throwaway work directory.
# Each command is printed as a user would type it, then its output.
#
#   DEMO_APP   app definition (default: testdata/postgres-offline.marathon.json;
#              testdata/postgres.marathon.json when postgres:9.5 is present)
#   DEMO_PORT  API port of the demo agent (default 18080)
#
# The demo agent has networking on with the defaults (the nftables table
# "mesolite", DNS on Docker's bridge gateway): it cannot run beside another
# agent that has networking on (make run's), and stops at once, saying so,
# when its networking fails.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin/mesolite"
[ -x "$bin" ] || { echo "demo: $bin is missing: run make build" >&2; exit 1; }
command -v psql >/dev/null || { echo "demo: psql is missing: apt-get install postgresql-client" >&2; exit 1; }

cd "$root"
app="${DEMO_APP:-}"
if [ -z "$app" ]; then
  if docker image inspect postgres:9.5 >/dev/null 2>&1; then
    app="testdata/postgres.marathon.json"
  else
    app="testdata/postgres-offline.marathon.json"
  fi
fi
port="${DEMO_PORT:-18080}"
work=$(mktemp -d /tmp/mesolite-demo.XXXXXX)
log="$work/agent.log"
export MESOLITE_URL="http://127.0.0.1:$port"
agent_pid=""
own_network=""

mesolite() { "$bin" "$@"; }

cleanup() {
  status=$?
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
    if [ $status -ne 0 ]; then
      echo "demo: failed; removing the app" >&2
      "$bin" app remove psql-client >/dev/null 2>&1 || true
      "$bin" app remove postgres >/dev/null 2>&1 || true
      until_ok no_deployments || true
    fi
    kill -TERM "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
    # The demo's check helper container goes with it.
    "$bin" cleanup --work-dir "$work/work" >/dev/null 2>&1 || true
    # So do its network rules (the default table), unless they were another
    # agent's.
    if [ -n "$own_network" ]; then
      "$bin" network cleanup >/dev/null 2>&1 || true
    fi
  fi
  echo
  echo "agent log: $log"
  exit $status
}
trap cleanup EXIT

# step CMD...: print the command as a user would type it, then run it.
step() {
  local shown="" a
  for a in "$@"; do
    case "$a" in
      *[[:space:]\'\"\$\(\)\*]*) a="\"${a//\"/\\\"}\"" ;;
    esac
    shown+="${shown:+ }$a"
  done
  printf '\n$ %s\n' "$shown"
  "$@"
}

# until CMD...: run CMD quietly every 0.5s until it succeeds (60s at most).
until_ok() {
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "demo: gave up waiting for: $*" >&2
  return 1
}

task_field() { # task_field FIELD: a field of the postgres task from the API
  curl -sf "$MESOLITE_URL/v2/apps/postgres/tasks" | sed -n "s/.*\"$1\":\(\[\{0,1\}\"\{0,1\}\)\([^]\",]*\).*/\2/p"
}
no_deployments() { [ "$(curl -sf "$MESOLITE_URL/v2/deployments")" = "[]" ]; }
running_healthy() { curl -sf "$MESOLITE_URL/v2/apps/postgres" | grep -q '"tasksHealthy":1'; }
stopped() { curl -sf "$MESOLITE_URL/v2/apps/postgres/tasks" | grep -q '"state":"TASK_KILLED"'; }
psql_ok() { psql -h 127.0.0.1 -p "$(task_field ports)" -U postgres -c 'select 1'; }

# network_field FIELD: a string field of the agent's network status.
network_field() {
  curl -sf "$MESOLITE_URL/mesolite/v1/status" | sed -n 's/.*"network":{[^}]*"'"$1"'":"\(\([^"\\]\|\\.\)*\)".*/\1/p' | sed 's/\\"/"/g'
}
# network_settled: networking is off (and says why), or its first apply is
# done or failed.
network_settled() {
  curl -sf "$MESOLITE_URL/mesolite/v1/status" | grep -q '"network":{[^}]*"\(off\|lastApplied\|lastError\)":'
}

echo "demo: agent on $MESOLITE_URL, work directory $work/work"
"$bin" agent --work-dir "$work/work" --listen "127.0.0.1:$port" --log-format json >"$log" 2>&1 &
agent_pid=$!
until_ok curl -sf "$MESOLITE_URL/ping"
network_error=""
if until_ok network_settled; then
  network_error=$(network_field lastError)
fi
if [ -n "$network_error" ]; then
  echo "demo: the demo agent's networking failed: $network_error" >&2
  echo "demo: is another agent with networking on running (make run)? Stop it (Ctrl-C) and run make demo again." >&2
  exit 1
fi
own_network=yes

echo
echo "# Install the stateful service (PostgreSQL), $(basename "$app")"
step mesolite marathon app add "$app"
until_ok running_healthy
step mesolite marathon task list

echo
echo "# Write some data (the volume pgdata holds it; the password is the app's POSTGRES_PASSWORD)"
step export PGPASSWORD='DC/OS_ROCKS'
until_ok psql_ok
pgport=$(task_field ports)
step psql -h 127.0.0.1 -p "$pgport" -U postgres \
  -c "CREATE TABLE tutorial (id serial PRIMARY KEY, note text)" \
  -c "INSERT INTO tutorial (note) VALUES ('written before stop'), ('still here after start')"

echo
echo "# Stop the service: the task stays listed, without a start time"
step mesolite marathon app stop postgres
until_ok stopped
step mesolite marathon task list

echo
echo "# Start it again: the same reservation and volume"
step mesolite marathon app start postgres
until_ok running_healthy
step mesolite marathon task list
until_ok psql_ok
step psql -h 127.0.0.1 -p "$(task_field ports)" -U postgres -c "SELECT * FROM tutorial ORDER BY id"

network_on() { curl -sf "$MESOLITE_URL/mesolite/v1/status" | grep -q '"mode":"\(kernel\|helper\)"'; }
client_read() { "$bin" task log psql-client | grep -q 'still here after start'; }
if network_on; then
  echo
  echo "# Connect a second app through the VIP (VIP_0 5.4.3.2:5432 of the app definition)"
  step mesolite marathon app add testdata/psql-client.marathon.json
  until_ok client_read
  step mesolite vip list
  step mesolite task log --lines 6 psql-client
  step psql -h 5.4.3.2 -U postgres -c "SELECT count(*) FROM tutorial"
  step mesolite dns postgres.marathon.mesos
  step mesolite dns _postgres._tcp.marathon.mesos SRV
  step mesolite marathon app remove psql-client
else
  echo
  echo "# (networking is off here, see mesolite's log: the VIP step is left out)"
fi

echo
echo "# Clean up"
step mesolite marathon app remove postgres
until_ok no_deployments
step mesolite marathon task list
step mesolite volume list
