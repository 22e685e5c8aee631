#!/usr/bin/env bash
# Installs what Switchyard's tests, benchmarks and demo need, idempotently.
# Quiet when there is nothing to do. Safe to run on a fresh Debian 12 machine
# as root (CI and developer machines) — see README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CONSUL_VERSION=1.21.0
NODE_PG_VERSION=8.23.1 # node-postgres, for the real-client tests (testbed.NodeModules)
PGBOUNCER_EXPORTER_VERSION=0.12.1 # testbed.PgbouncerExporterVersion
cache=${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}
consul_bin="$cache/consul-v$CONSUL_VERSION/consul"
node_pg="$cache/node-pg-v$NODE_PG_VERSION"
exporter_bin="$cache/pgbouncer_exporter-v$PGBOUNCER_EXPORTER_VERSION/pgbouncer_exporter"

# Debian packages, by the command or file that proves each is present.
declare -A want=(
  [etcd-server]=/usr/bin/etcd
  [zookeeperd]=/usr/share/zookeeper/bin/zkServer.sh
  [python3-kazoo]=/usr/lib/python3/dist-packages/kazoo
  [python3-consul]=/usr/lib/python3/dist-packages/consul
  [python3-etcd]=/usr/lib/python3/dist-packages/etcd
  [patroni]=/usr/bin/patroni
  [pgbouncer]=/usr/sbin/pgbouncer
  [haproxy]=/usr/sbin/haproxy
  [postgresql-15]=/usr/lib/postgresql/15/bin/postgres
  [postgresql-client-15]=/usr/lib/postgresql/15/bin/pgbench
  [procps]=/usr/bin/pgrep
  [util-linux]=/usr/bin/taskset
  [strace]=/usr/bin/strace
  # Real clients of proxy/pooled_clients_test.go (psql and pgbench above).
  [openjdk-17-jdk-headless]=/usr/lib/jvm/java-17-openjdk-amd64/bin/javac
  [libpostgresql-jdbc-java]=/usr/share/java/postgresql.jar
  [python3-psycopg2]=/usr/lib/python3/dist-packages/psycopg2
  [python3-asyncpg]=/usr/lib/python3/dist-packages/asyncpg
  [nodejs]=/usr/bin/node
  [npm]=/usr/bin/npm
  # Tools of internal/testbed/tools.go: promtool checks metrics expositions,
  # headless Chromium screenshots pages. Only promtool is used from the
  # prometheus package; policy-rc.d keeps its server from starting.
  [prometheus]=/usr/bin/promtool
  [chromium]=/usr/bin/chromium
)
missing=()
for pkg in "${!want[@]}"; do
  [ -e "${want[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # policy-rc.d on these machines keeps apt from starting the packaged
  # services; the test bed runs its own instances on free loopback ports.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$consul_bin" ]; then
  echo "deps: building Consul v$CONSUL_VERSION into $consul_bin (once per machine, ~13 min cold)" >&2
  mkdir -p "$(dirname "$consul_bin")"
  buildlog="$cache/consul-build.log"
  if ! (
    cd "$here/consul"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    go build -ldflags="-s -w" -o "$consul_bin.tmp" github.com/hashicorp/consul
  ) >"$buildlog" 2>&1; then
    tail -30 "$buildlog" >&2
    echo "deps: building Consul failed; full log in $buildlog" >&2
    exit 1
  fi
  mv "$consul_bin.tmp" "$consul_bin"
fi
"$consul_bin" version >/dev/null

if [ ! -x "$exporter_bin" ]; then
  echo "deps: building pgbouncer_exporter v$PGBOUNCER_EXPORTER_VERSION into $exporter_bin" >&2
  mkdir -p "$(dirname "$exporter_bin")"
  buildlog="$cache/pgbouncer_exporter-build.log"
  if ! (
    cd "$here/pgbouncer_exporter"
    export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    go build -ldflags="-s -w -X github.com/prometheus/common/version.Version=$PGBOUNCER_EXPORTER_VERSION" \
      -o "$exporter_bin.tmp" github.com/prometheus-community/pgbouncer_exporter
  ) >"$buildlog" 2>&1; then
    tail -30 "$buildlog" >&2
    echo "deps: building pgbouncer_exporter failed; full log in $buildlog" >&2
    exit 1
  fi
  mv "$exporter_bin.tmp" "$exporter_bin"
fi
"$exporter_bin" --version >/dev/null 2>&1

# node-postgres from the npm registry, pinned, outside the repository.
if [ ! -e "$node_pg/node_modules/pg/package.json" ]; then
  echo "deps: installing node-postgres pg@$NODE_PG_VERSION into $node_pg" >&2
  rm -rf "$node_pg.tmp"
  mkdir -p "$node_pg.tmp"
  npmlog="$cache/npm-install.log"
  if ! npm install --prefix "$node_pg.tmp" --no-audit --no-fund --loglevel=error \
      "pg@$NODE_PG_VERSION" >"$npmlog" 2>&1; then
    tail -30 "$npmlog" >&2
    echo "deps: npm install pg@$NODE_PG_VERSION failed; full log in $npmlog" >&2
    exit 1
  fi
  rm -rf "$node_pg"
  mv "$node_pg.tmp" "$node_pg"
fi
