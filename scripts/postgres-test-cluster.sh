#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster for the tests: initdb in a temporary
# folder, listening on 127.0.0.1 only on a free port, wal_level = logical, trust for the
# superuser and a password for one test user. The cluster is stopped and deleted when the
# command ends, whatever happens. The command sees LAKELINK_TEST_POSTGRES (connection
# settings, space-separated key=value) and LAKELINK_TEST_POSTGRES_BIN (the server binaries).
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
data=$dir/data
# A port nothing listens on (a connection to it is refused).
port=
for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        port=$candidate
        break
    fi
done
[[ -n "$port" ]] || { echo "postgres-test-cluster: no free port found" >&2; exit 1; }

stop() {
    "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
wal_level = logical
max_replication_slots = 200
max_wal_senders = 20
max_connections = 300
fsync = off
full_page_writes = off
CONF
# Trust for the superuser on loopback; the test user must give its password.
cat >"$data/pg_hba.conf" <<HBA
local all all trust
host all lakelink_password_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
HBA
"${as_owner[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
"$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
    -c "CREATE ROLE lakelink_password_user LOGIN SUPERUSER PASSWORD 'lakelink-test-secret'" >/dev/null

export LAKELINK_TEST_POSTGRES="host=127.0.0.1 port=$port user=postgres"
export LAKELINK_TEST_POSTGRES_BIN=$bin
echo "postgres-test-cluster: PostgreSQL on 127.0.0.1:$port ($dir)" >&2
set +e
"$@"
status=$?
exit $status
