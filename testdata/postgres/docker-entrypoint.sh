#!/usr/bin/env bash
# Entrypoint of the mesolite/postgres:15 image.
#
# Mimics the parts of the official postgres image's entrypoint that tutorials
# rely on: POSTGRES_PASSWORD / POSTGRES_USER / POSTGRES_DB /
# POSTGRES_INITDB_ARGS / POSTGRES_HOST_AUTH_METHOD, one-time initialisation of
# $PGDATA and /docker-entrypoint-initdb.d/ scripts.
#
# Unlike the official image this script stays PID 1 and runs the server as a
# child process so it can turn `docker stop`'s SIGTERM (a "smart" shutdown for
# postgres, which waits for every client to disconnect) into SIGINT (a "fast"
# shutdown that still writes a clean checkpoint).
set -euo pipefail

PG_BIN=/usr/lib/postgresql/${PG_MAJOR:-15}/bin
case ":$PATH:" in
    *":$PG_BIN:"*) ;;
    *) PATH="$PG_BIN:$PATH" ;;
esac
export PATH

SOCKET_DIR=/var/run/postgresql
INITDB_DIR=/docker-entrypoint-initdb.d

log() { printf 'entrypoint: %s\n' "$*"; }
# die LINE... : print an error (first line prefixed, the rest indented), exit 1.
die() {
    printf 'entrypoint: error: %s\n' "$1" >&2
    shift
    [ $# -eq 0 ] || printf '    %s\n' "$@" >&2
    exit 1
}

# Run a command as the postgres user (setpriv changes uid/gid and execs the
# command). When the container already runs as a non-root user
# (docker run --user ...) the command is simply run as that user.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

# Root-only preparation: directories and their ownership.
prepare_dirs() {
    mkdir -p "$PGDATA"
    if [ "$(id -u)" = 0 ]; then
        # A freshly bind-mounted host directory is owned by root. Only walk
        # the tree when the top is not ours: a large existing data directory
        # that is already correct is left alone.
        if [ "$(stat -c %U "$PGDATA")" != postgres ]; then
            chown -R postgres:postgres "$PGDATA"
        else
            chown postgres:postgres "$PGDATA"
        fi
        mkdir -p "$SOCKET_DIR"
        chown postgres:postgres "$SOCKET_DIR"
        chmod 2775 "$SOCKET_DIR"
    fi
    # postgres refuses to start unless the data directory is private.
    chmod 0700 "$PGDATA"
    if ! as_postgres test -w "$PGDATA" -a -x "$PGDATA"; then
        die "the postgres user cannot use PGDATA=$PGDATA;" \
            "check the permissions of the directory and of all its parents."
    fi
}

# Refuse to initialise without a password unless trust was asked for.
check_password() {
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
        cat >&2 <<'MSG'
entrypoint: error: the database is uninitialized and no superuser password was given.

  Set POSTGRES_PASSWORD to a non-empty value, for example:
      docker run -e POSTGRES_PASSWORD=mysecretpassword mesolite/postgres:15

  Or, to allow every connection WITHOUT a password (never do this for
  anything reachable from outside), set:
      POSTGRES_HOST_AUTH_METHOD=trust
MSG
        exit 1
    fi
    if [ "${POSTGRES_HOST_AUTH_METHOD:-}" = trust ]; then
        log "WARNING: POSTGRES_HOST_AUTH_METHOD=trust: every TCP client may connect as any user without a password"
    fi
}

# psql against the temporary, socket-only server started by init_database.
psql_local() {
    as_postgres psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
        --host="$SOCKET_DIR" --username="$POSTGRES_USER" "$@"
}

run_initdb_scripts() {
    local f
    [ -d "$INITDB_DIR" ] || return 0
    # Make it easy for scripts to reach the new database with plain `psql`.
    export PGHOST="$SOCKET_DIR" PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB"
    for f in "$INITDB_DIR"/*; do
        [ -f "$f" ] || continue
        case "$f" in
            *.sh)
                log "running $f"
                if [ -x "$f" ]; then as_postgres "$f"; else as_postgres bash "$f"; fi
                ;;
            *.sql)
                log "running $f"
                psql_local --dbname="$POSTGRES_DB" -f "$f"
                ;;
            *.sql.gz)
                log "running $f"
                gzip -dc "$f" | psql_local --dbname="$POSTGRES_DB"
                ;;
            *) log "ignoring $f" ;;
        esac
    done
    unset PGHOST PGUSER PGDATABASE
}

init_database() {
    local pwfile="" method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

    # Never wipe anything: a non-empty directory without PG_VERSION is not
    # ours to touch.
    if [ -n "$(ls -A "$PGDATA")" ]; then
        die "PGDATA=$PGDATA is not empty but contains no PostgreSQL cluster (no PG_VERSION)." \
            "Refusing to initialise it. Empty the directory, or point PGDATA to a" \
            "subdirectory (e.g. PGDATA=$PGDATA/pgdata)."
    fi
    check_password

    log "initialising a new database cluster in $PGDATA"
    local args=(--username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8 --no-instructions
        --auth-local=trust --auth-host=trust)
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        # Hand the password over in a file readable only by postgres; it
        # must not show up in the process list.
        pwfile="$(umask 077; mktemp /tmp/pwfile.XXXXXX)"
        trap 'rm -f "$pwfile"' EXIT
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        [ "$(id -u)" != 0 ] || chown postgres:postgres "$pwfile"
        args+=(--pwfile="$pwfile")
    fi
    # POSTGRES_INITDB_ARGS is word-split on purpose (e.g. "--data-checksums
    # --locale-provider=icu"); later options override ours.
    # shellcheck disable=SC2206
    args+=(${POSTGRES_INITDB_ARGS:-})
    as_postgres initdb --pgdata="$PGDATA" "${args[@]}"
    if [ -n "$pwfile" ]; then
        rm -f "$pwfile"
        trap - EXIT
    fi

    # Listen on all interfaces of the container; authenticate as configured.
    printf "\n# added by docker-entrypoint.sh\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
    cat > "$PGDATA/pg_hba.conf" <<HBA
# Written by docker-entrypoint.sh on first start.
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          all            trust
local   replication  all            trust
host    all          all   all      $method
host    replication  all   all      $method
HBA
    [ "$(id -u)" != 0 ] || chown postgres:postgres "$PGDATA/pg_hba.conf"

    # Temporary server, reachable only through the unix socket, for creating
    # the database and running the init scripts.
    log "starting a temporary server for initialisation"
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start

    if [ "$POSTGRES_DB" != postgres ]; then
        log "creating database $POSTGRES_DB"
        psql_local --dbname=postgres --set=db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
    fi
    run_initdb_scripts

    log "stopping the temporary server"
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop
    log "initialisation complete; starting PostgreSQL"
}

# Run the server as a child and translate stop signals into a fast shutdown.
run_server() {
    local pid="" stop_requested="" status
    # TERM (docker stop), INT (Ctrl-C) and QUIT all become SIGINT = fast
    # shutdown: clients are disconnected, a checkpoint is written and the
    # next start needs no crash recovery. The trap is set before the server
    # is started so that an early signal is not lost.
    trap 'stop_requested=1; [ -z "$pid" ] || kill -INT "$pid" 2>/dev/null || true' TERM INT QUIT
    # Start the server as a plain background command (not via the
    # as_postgres function, which would run in a forked subshell): the
    # forked shell execs setpriv, which execs postgres, so "$!" is the pid
    # of the postmaster itself.
    if [ "$(id -u)" = 0 ]; then
        HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$@" &
    else
        "$@" &
    fi
    pid=$!
    [ -z "$stop_requested" ] || kill -INT "$pid" 2>/dev/null || true
    # A trapped signal interrupts `wait` (status > 128) while the server is
    # still shutting down, so keep waiting until the process is gone ...
    while kill -0 "$pid" 2>/dev/null; do
        wait "$pid" || true
    done
    # ... then fetch its real exit status (bash remembers it).
    status=0
    wait "$pid" || status=$?
    exit "$status"
}

main() {
    # No arguments at all (CMD cleared) means: run the server.
    if [ $# -eq 0 ]; then
        set -- postgres
    fi
    # `docker run image -c foo=bar` means `postgres -c foo=bar`.
    if [ "${1:0:1}" = - ]; then
        set -- postgres "$@"
    fi
    if [ "$1" != postgres ]; then
        exec "$@"
    fi

    : "${PGDATA:=/var/lib/postgresql/data}"
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    export PGDATA POSTGRES_USER POSTGRES_DB

    prepare_dirs
    if [ -e "$PGDATA/PG_VERSION" ]; then
        log "PostgreSQL database directory $PGDATA already initialised; skipping initialisation"
    else
        init_database
    fi
    run_server "$@"
}

main "$@"
