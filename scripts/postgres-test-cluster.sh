#!/usr/bin/env bash
# Runs a command with throwaway PostgreSQL clusters for the tests: initdb in a temporary
# folder, listening on 127.0.0.1 only on a free port, wal_level = logical, trust for the
# superuser and a password for one test user. The clusters are stopped and deleted when the
# command ends, whatever happens. The command sees LAKELINK_TEST_POSTGRES (connection
# settings, space-separated key=value), LAKELINK_TEST_POSTGRES_WAL_REPLICA (a second
# server, with wal_level = replica) and LAKELINK_TEST_POSTGRES_CA (the first server's
# self-signed certificate; its user lakelink_tls_user may only connect over TLS).
#
#   scripts/postgres-test-cluster.sh cargo test --workspace
set -euo pipefail

bin=${POSTGRES_BIN:-}
if [[ -z "$bin" ]]; then
    for candidate in /usr/lib/postgresql/*/bin; do
        [[ -x "$candidate/initdb" ]] && bin=$candidate
    done
fi
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    echo "postgres-test-cluster: PostgreSQL server binaries not found; install postgresql (Debian: apt-get install postgresql) or set POSTGRES_BIN" >&2
    exit 1
fi

# initdb refuses to run as root: the cluster then belongs to the postgres user.
as_owner=()
if [[ $(id -u) == 0 ]]; then
    as_owner=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/lakelink-pg.XXXXXX)
chmod 755 "$dir"
[[ ${#as_owner[@]} -gt 0 ]] && chown postgres "$dir"
started=()

stop() {
    for data in "${started[@]}"; do
        "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}
trap stop EXIT

# A port nothing listens on (a connection to it is refused).
free_port() {
    for _ in $(seq 50); do
        local candidate=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "postgres-test-cluster: no free port found" >&2
    exit 1
}

# start_cluster NAME PORT WAL_LEVEL: a cluster in $dir/NAME, trust for the superuser on
# loopback, a password for the test user.
start_cluster() {
    local data=$dir/$1 port=$2 wal_level=$3
    "${as_owner[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/$1-initdb.log" 2>&1 \
        || { cat "$dir/$1-initdb.log" >&2; exit 1; }
    # The WAL starts far past 4 GiB, as on a server that has run for a while: positions (LSNs)
    # then need both 32-bit halves, which a fresh cluster's never do.
    "${as_owner[@]}" "$bin/pg_resetwal" -l 00000001000000AB00000000 "$data" >>"$dir/$1-initdb.log" 2>&1 \
        || { cat "$dir/$1-initdb.log" >&2; exit 1; }
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = $wal_level
max_replication_slots = 200
max_wal_senders = 64
max_connections = 300
fsync = off
full_page_writes = off
CONF
    cat >"$data/pg_hba.conf" <<HBA
local all all trust
host all lakelink_password_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
HBA
    if [[ $1 == logical ]]; then
        # TLS with a certificate for 127.0.0.1 from a throwaway authority; lakelink_tls_user
        # may only connect over it.
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=lakelink test authority" \
            -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$dir/server.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
            -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" >/dev/null 2>&1
        install -m 600 "$dir/server.key" "$data/server.key"
        install -m 644 "$dir/server.crt" "$data/server.crt"
        if [[ ${#as_owner[@]} -gt 0 ]]; then
            chown postgres "$data/server.key" "$data/server.crt"
        fi
        cat >>"$data/postgresql.conf" <<CONF
ssl = on
CONF
        cat >"$data/pg_hba.conf" <<HBA
local all all trust
hostnossl all lakelink_tls_user 127.0.0.1/32 reject
hostssl all lakelink_tls_user 127.0.0.1/32 trust
host all lakelink_password_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
HBA
    fi
    "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/$1-server.log" -w start >/dev/null \
        || { cat "$dir/$1-server.log" >&2; exit 1; }
    started+=("$data")
    "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
        -c "CREATE ROLE lakelink_password_user LOGIN SUPERUSER PASSWORD 'lakelink-test-secret'" \
        -c "CREATE ROLE lakelink_tls_user LOGIN SUPERUSER" >/dev/null
}

port=$(free_port)
start_cluster logical "$port" logical
# A second, small server without logical decoding, for the test of the error naming it.
replica_port=$(free_port)
start_cluster replica "$replica_port" replica

export LAKELINK_TEST_POSTGRES="host=127.0.0.1 port=$port user=postgres"
export LAKELINK_TEST_POSTGRES_WAL_REPLICA="host=127.0.0.1 port=$replica_port user=postgres"
export LAKELINK_TEST_POSTGRES_CA=$dir/ca.crt
echo "postgres-test-cluster: PostgreSQL on 127.0.0.1:$port, and with wal_level = replica on 127.0.0.1:$replica_port ($dir)" >&2
set +e
"$@"
status=$?
exit $status
