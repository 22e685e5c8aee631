#!/usr/bin/env bash
# Installs what Switchyard's tests, benchmarks and demo need, idempotently.
# Quiet when there is nothing to do. Safe to run on a fresh Debian 12 machine
# as root (CI and developer machines) — see README.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
CONSUL_VERSION=1.21.0
cache=${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}
consul_bin="$cache/consul-v$CONSUL_VERSION/consul"

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
