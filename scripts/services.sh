#!/usr/bin/env bash
# Real PostgreSQL, Redis and RabbitMQ for the tests, from Debian's packages,
# on 127.0.0.1 in throwaway directories, without systemd.
#
#   scripts/services.sh install              install what is missing (apt)
#   scripts/services.sh up DIR               start all three under DIR, print `export` lines
#   scripts/services.sh down DIR             stop what `up` started
#   scripts/services.sh redis-start DIR PORT     a Redis of its own (fault tests)
#   scripts/services.sh redis-stop DIR
#   scripts/services.sh redis-sentinel-start DIR MASTER_PORT REPLICA_PORT S1 S2 S3
#                       a Redis master + replica + three sentinels (master name `smap`;
#                       REDIS_PASSWORD / REDIS_SENTINEL_PASSWORD from the environment, if set)
#   scripts/services.sh redis-sentinel-kill DIR PORT   SIGKILL that data node (failover tests)
#   scripts/services.sh redis-sentinel-stop DIR
#   scripts/services.sh rabbitmq-start DIR PORT [DIST_PORT]  a RabbitMQ node of its own
#   scripts/services.sh rabbitmq-stop DIR PORT
#   scripts/services.sh rabbitmq-vhost add|delete NAME  a vhost on the shared node
#   scripts/services.sh rabbitmq-cluster-start DIR PORT PORT...  a cluster of its own
#   scripts/services.sh rabbitmq-cluster-kill DIR PORT   SIGKILL one node of it
#   scripts/services.sh rabbitmq-cluster-stop DIR PORT PORT...
#   scripts/services.sh postgres-start DIR PORT  a PostgreSQL of its own (data kept across restarts)
#   scripts/services.sh postgres-stop DIR
#
# Ports of the shared instances: PostgreSQL 5442, Redis 6390, RabbitMQ 5682.
set -euo pipefail

PG_PORT="${SMAP_TEST_PG_PORT:-5442}"
# SMAP_TEST_PG_OPTIONS: more server options for a profile, e.g.
# "-c shared_preload_libraries=pg_stat_statements" (docs/benchmarks.md; read
# the figures after `CREATE EXTENSION pg_stat_statements` in any database).
REDIS_PORT="${SMAP_TEST_REDIS_PORT:-6390}"
AMQP_PORT="${SMAP_TEST_AMQP_PORT:-5682}"
RABBIT_BIN=/usr/lib/rabbitmq/bin
# Tools unpacked rather than installed (promtool).
TOOLS_DIR="${SMAP_TOOLS_DIR:-/opt/smap-identity-tools}"

log() { printf '[services] %s\n' "$*" >&2; }

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [[ -n "$dir" ]] || { log "PostgreSQL binaries not found"; return 1; }
  echo "$dir"
}

install() {
  # The SMTP sink of the e-mail tests: aiosmtpd (PyPI), a real SMTP server;
  # pika runs the Python consumer example of docs/event-migration-guide.md;
  # schemathesis fuzzes the HTTP API from its OpenAPI document.
  if ! python3 -c 'import aiosmtpd, pika' 2>/dev/null || ! st --version 2>/dev/null | grep -q '4.32.5'; then
    log "installing aiosmtpd, pika and schemathesis"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      aiosmtpd 'pika==1.3.2' 'schemathesis==4.32.5'
  fi
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [[ -x "$RABBIT_BIN/rabbitmq-server" ]] || missing+=(rabbitmq-server)
  ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages' init scripts from starting system-wide servers.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
  # promtool checks /metrics and the alert rules. Debian ships it in the
  # `prometheus` package: unpacked, not installed, so no server comes with it.
  if [[ ! -x "$TOOLS_DIR/usr/bin/promtool" ]]; then
    log "unpacking promtool from Debian's prometheus package"
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null || { apt-get update -qq && apt-get download -qq prometheus; })
    mkdir -p "$TOOLS_DIR"
    dpkg -x "$tmp"/prometheus_*.deb "$TOOLS_DIR"
    rm -rf "$tmp"
  fi
}

wait_port() { # host port seconds pid-or-empty name
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if [[ -n "$4" ]] && ! kill -0 "$4" 2>/dev/null; then log "$5 exited during start-up"; return 1; fi
    ((SECONDS < deadline)) || { log "$5 not listening on $1:$2 after $3 s"; return 1; }
    sleep 0.1
  done
}

# --- Redis -------------------------------------------------------------------
redis_start() { # dir port
  mkdir -p "$1"
  redis-server --bind 127.0.0.1 --port "$2" --daemonize yes --save '' --appendonly no \
    --dir "$1" --pidfile "$1/redis.pid" --logfile "$1/redis.log" --maxmemory-policy noeviction
  wait_port 127.0.0.1 "$2" 20 "" redis
  until redis-cli -p "$2" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
}

redis_stop() { # dir
  [[ -f "$1/redis.pid" ]] || return 0
  local pid; pid="$(cat "$1/redis.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1/redis.pid"
}

# --- Redis Sentinel (issue 14) ------------------------------------------------
# Master + replica + 3 sentinels on 127.0.0.1, each under DIR/PORT with
# absolute paths (relative ones break with --daemonize). Sentinels are
# `redis-server CONF --sentinel` (no redis-sentinel package), each with a
# writable conf of its own: Sentinel rewrites it. Timings: fail over 1 s
# after the master stops answering (docs/deploy.md has the measured time).
SENTINEL_MASTER_NAME=smap

# The tail of every server log under DIR, to stderr: a set-up that failed
# says why (a port taken, a refused config) before the test removes DIR.
dump_logs() { # dir
  local f
  for f in "$1"/*/*.log; do
    [[ -f "$f" ]] || continue
    log "--- $f (last 15 lines)"
    tail -n 15 "$f" >&2
  done
}

redis_sentinel_start() { # dir master-port replica-port s1 s2 s3
  local dir="$1" master="$2" replica="$3"; shift 3
  local pw="${REDIS_PASSWORD:-}" spw="${REDIS_SENTINEL_PASSWORD:-}" port
  [[ "$dir" == /* ]] || dir="$PWD/$dir"
  for port in "$master" "$replica"; do
    mkdir -p "$dir/$port"
    local args=(--bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no
      --dir "$dir/$port" --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
      --maxmemory-policy noeviction)
    # masterauth on both: either may become the replica after a failover.
    [[ -z "$pw" ]] || args+=(--requirepass "$pw" --masterauth "$pw")
    [[ "$port" == "$master" ]] || args+=(--replicaof 127.0.0.1 "$master")
    redis-server "${args[@]}"
  done
  for port in "$@"; do
    mkdir -p "$dir/$port"
    {
      printf 'bind 127.0.0.1\nport %s\ndaemonize yes\n' "$port"
      printf 'pidfile %s\nlogfile %s\ndir %s\n' "$dir/$port/sentinel.pid" "$dir/$port/sentinel.log" "$dir/$port"
      [[ -z "$spw" ]] || printf 'requirepass %s\n' "$spw"
      printf 'sentinel monitor %s 127.0.0.1 %s 2\n' "$SENTINEL_MASTER_NAME" "$master"
      [[ -z "$pw" ]] || printf 'sentinel auth-pass %s %s\n' "$SENTINEL_MASTER_NAME" "$pw"
      printf 'sentinel down-after-milliseconds %s 1000\n' "$SENTINEL_MASTER_NAME"
      printf 'sentinel failover-timeout %s 3000\n' "$SENTINEL_MASTER_NAME"
      printf 'sentinel parallel-syncs %s 1\n' "$SENTINEL_MASTER_NAME"
    } > "$dir/$port/sentinel.conf"
    redis-server "$dir/$port/sentinel.conf" --sentinel
  done
  # Ready: the replica in sync, every sentinel sees it and the two others.
  local deadline=$((SECONDS + 60)) cli=(redis-cli -h 127.0.0.1 --no-auth-warning)
  field() { # sentinel-port field
    "${cli[@]}" -p "$1" ${spw:+-a "$spw"} sentinel master "$SENTINEL_MASTER_NAME" 2>/dev/null |
      sed -n "/^$2\$/{n;p}"
  }
  for port in "$@"; do
    until [[ "$(field "$port" num-other-sentinels)" == 2 && "$(field "$port" num-slaves)" == 1 ]]; do
      ((SECONDS < deadline)) || { log "sentinel $port not ready after 60 s"; dump_logs "$dir"; return 1; }
      sleep 0.1
    done
  done
  until "${cli[@]}" -p "$replica" ${pw:+-a "$pw"} info replication 2>/dev/null | grep -q 'master_link_status:up'; do
    ((SECONDS < deadline)) || { log "replica $replica not in sync after 60 s"; dump_logs "$dir"; return 1; }
    sleep 0.1
  done
}

redis_sentinel_kill() { # dir port
  kill -9 "$(cat "$1/$2/redis.pid")"
}

redis_sentinel_stop() { # dir: sentinels signalled first, so they start no failover
  local f pid pids=()
  for f in "$1"/*/sentinel.pid "$1"/*/redis.pid; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"; rm -f "$f"
    kill "$pid" 2>/dev/null && pids+=("$pid")
  done
  # All at once: one by one, each waited for, took 7 s.
  for _ in $(seq 50); do
    local alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || return 0
    sleep 0.1
  done
  kill -9 "${alive[@]}" 2>/dev/null || true
}

# --- RabbitMQ ----------------------------------------------------------------
rabbit_env() { # dir port [dist-port]
  local dir="$1" port="$2" dist="${3:-}"
  [[ -n "$dist" ]] || dist="$(cat "$dir/dist.port" 2>/dev/null || echo $((port + 20000)))"
  export HOME="$dir/home"
  export RABBITMQ_NODENAME="smap${port}@localhost"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_PID_FILE="$dir/rabbit.pid"
  export RABBITMQ_DIST_PORT="$dist"
  export ERL_EPMD_ADDRESS=127.0.0.1 ERL_CRASH_DUMP="$dir/erl_crash.dump"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
  export RABBITMQ_CTL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
}

rabbitmq_start() { # dir port [dist-port: Erlang distribution, default port+20000]
  local dir="$1" port="$2" dist="${3:-$(($2 + 20000))}"
  ((dist <= 65535)) || { log "distribution port $dist is out of range: pass one"; return 1; }
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  echo "$dist" > "$dir/dist.port"
  (
    rabbit_env "$dir" "$port" "$dist"
    [[ -f "$HOME/.erlang.cookie" ]] || { head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$HOME/.erlang.cookie"; chmod 400 "$HOME/.erlang.cookie"; }
    printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' "$port" > "$RABBITMQ_CONFIG_FILE"
    echo '[].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
    setsid "$RABBIT_BIN/rabbitmq-server" > "$dir/log/stdout.log" 2>&1 < /dev/null &
    echo $! > "$dir/launcher.pid"
    local wait="${RABBIT_START_TIMEOUT:-60}"
    wait_port 127.0.0.1 "$port" "$wait" "$!" rabbitmq || { tail -20 "$dir/log/stdout.log" >&2; exit 1; }
    "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" await_startup --timeout "$wait" >/dev/null
  )
}

rabbitmq_stop() { # dir port
  local dir="$1" port="$2"
  [[ -f "$dir/launcher.pid" ]] || return 0
  (
    rabbit_env "$dir" "$port"
    timeout 30 "$RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop >/dev/null 2>&1 || true
  )
  local pid; pid="$(cat "$dir/launcher.pid")"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # Whatever is left of that node (beam, its children) goes too.
  pkill -9 -f "smap${port}@localhost" 2>/dev/null || true
  kill -9 -- "-$pid" 2>/dev/null || true
  rm -f "$dir/launcher.pid"
}

rabbitmq_vhost() { # add|delete NAME [DIR]: a virtual host of the shared node, for tests
  # that run consumers on the standard queue names without meeting each other.
  local action="$1" name="$2" dir="${3:-${SMAP_SERVICES_DIR:-/tmp/smap-identity-services}}/rabbitmq"
  (
    rabbit_env "$dir" "$AMQP_PORT"
    local ctl=("$RABBIT_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME")
    case "$action" in
      add)
        "${ctl[@]}" add_vhost "$name" >/dev/null
        "${ctl[@]}" set_permissions -p "$name" guest '.*' '.*' '.*' >/dev/null ;;
      delete) "${ctl[@]}" delete_vhost "$name" >/dev/null 2>&1 || true ;;
      *) log "rabbitmq-vhost: add or delete"; return 2 ;;
    esac
  )
}

# A cluster: nodes started as above (node N in DIR/nN, named smapN@localhost),
# all with one Erlang cookie, then joined to the first one at a time
# (concurrent joins race on the schema). Its nodes share epmd with the other
# nodes of this machine, so epmd is never killed here.
rabbitmq_cluster_start() { # dir port port...
  local dir="$1"; shift
  (($# >= 2)) || { log "rabbitmq-cluster-start: DIR and two or more ports"; return 2; }
  mkdir -p "$dir"
  local cookie; cookie="$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  local pids=() p
  for p in "$@"; do
    # A node left by a run that was killed would hold the port and the name.
    pkill -9 -f "smap${p}@localhost" 2>/dev/null || true
    mkdir -p "$dir/n$p/home"
    rm -f "$dir/n$p/home/.erlang.cookie"
    printf '%s' "$cookie" > "$dir/n$p/home/.erlang.cookie"; chmod 400 "$dir/n$p/home/.erlang.cookie"
    RABBIT_START_TIMEOUT="${RABBIT_START_TIMEOUT:-180}" rabbitmq_start "$dir/n$p" "$p" & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { log "a cluster node failed to start"; return 1; }; done
  local seed="smap$1@localhost"; shift
  for p in "$@"; do
    (
      rabbit_env "$dir/n$p" "$p"
      local ctl=("$RABBIT_BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME")
      "${ctl[@]}" stop_app && "${ctl[@]}" join_cluster "$seed" && "${ctl[@]}" start_app
    ) >/dev/null || { log "node $p failed to join $seed"; return 1; }
  done
}

rabbitmq_cluster_kill() { # dir port: SIGKILL of the node's Erlang VM, no goodbye to clients
  kill -9 "$(cat "$1/n$2/rabbit.pid")"
}

rabbitmq_cluster_stop() { # dir port port...
  local dir="$1"; shift
  local p
  for p in "$@"; do rabbitmq_stop "$dir/n$p" "$p" & done
  wait
}

# --- PostgreSQL --------------------------------------------------------------
postgres_start() { # dir port
  local dir="$1" port="$2" bin; bin="$(pg_bin)"
  mkdir -p "$dir"; chown postgres:postgres "$dir"
  # A second start (after a stop) keeps the data.
  [[ -f "$dir/data/PG_VERSION" ]] ||
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 ${SMAP_TEST_PG_OPTIONS:-}" start >/dev/null
}

postgres_stop() { # dir
  [[ -f "$1/data/postmaster.pid" ]] || return 0
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$1/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# --- all three -----------------------------------------------------------------
up() { # dir
  local dir="$1"
  down "$dir" 2>/dev/null || true
  rm -rf "$dir"; mkdir -p "$dir"; chmod 755 "$dir"
  redis_start "$dir/redis" "$REDIS_PORT" & local r=$!
  postgres_start "$dir/postgres" "$PG_PORT" & local p=$!
  rabbitmq_start "$dir/rabbitmq" "$AMQP_PORT" & local q=$!
  wait $r || { log "Redis failed to start"; return 1; }
  wait $p || { log "PostgreSQL failed to start"; return 1; }
  wait $q || { log "RabbitMQ failed to start"; return 1; }
  echo "export REDIS_HOST=127.0.0.1 REDIS_PORT=$REDIS_PORT"
  echo "export AMQP_URL=amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
  echo "export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "export SMAP_SERVICES_DIR=$dir"
  echo "export PROMTOOL=$TOOLS_DIR/usr/bin/promtool"
}

down() { # dir
  local dir="$1"
  [[ -d "$dir" ]] || return 0
  redis_stop "$dir/redis"
  postgres_stop "$dir/postgres"
  rabbitmq_stop "$dir/rabbitmq" "$AMQP_PORT"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  install) install ;;
  up) up "$@" ;;
  down) down "$@" ;;
  redis-start) redis_start "$@" ;;
  redis-stop) redis_stop "$@" ;;
  redis-sentinel-start) redis_sentinel_start "$@" ;;
  redis-sentinel-kill) redis_sentinel_kill "$@" ;;
  redis-sentinel-stop) redis_sentinel_stop "$@" ;;
  rabbitmq-start) rabbitmq_start "$@" ;;
  rabbitmq-stop) rabbitmq_stop "$@" ;;
  rabbitmq-vhost) rabbitmq_vhost "$@" ;;
  rabbitmq-cluster-start) rabbitmq_cluster_start "$@" ;;
  rabbitmq-cluster-kill) rabbitmq_cluster_kill "$@" ;;
  rabbitmq-cluster-stop) rabbitmq_cluster_stop "$@" ;;
  postgres-start) postgres_start "$@" ;;
  postgres-stop) postgres_stop "$@" ;;
  *) sed -n '2,24p' "$0"; exit 2 ;;
esac
