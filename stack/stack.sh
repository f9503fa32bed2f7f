#!/usr/bin/env bash
# Local process stack: Kafka (single-node KRaft), PostgreSQL and an SMTP sink,
# run as plain processes because this machine has no Docker.
#
#     bash stack/stack.sh deps|up|down|status|reset
#
# Everything lives under .stack/ of this checkout and binds to 127.0.0.1 only,
# so two checkouts can coexist if they use different OTP_*_PORT values.
# Ports and secrets come from stack/env.sh, the same file the services and
# tests source, so they cannot disagree about where things are.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OTP_ROOT=$ROOT
# shellcheck source=stack/env.sh
. "$ROOT/stack/env.sh"

STACK=$ROOT/.stack
RUN=$STACK/run
LOGS=$STACK/logs
KAFKA_DIR=$STACK/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_PID=$RUN/kafka.pid
# PostgreSQL runs as the postgres user, which cannot reach a checkout below
# a private folder (a mktemp -d dir, /root). Then its files live in a
# per-checkout folder in postgres' home and .stack/pg is a symlink there;
# every path handed to PostgreSQL is the resolved one.
PG_LINK=$STACK/pg
PG_DIR=$PG_LINK
[[ -L $PG_LINK ]] && PG_DIR=$(readlink -f "$PG_LINK")
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/run
SMTP_PID=$RUN/smtp.pid
PY=$ROOT/.venv/bin/python
# Seconds to wait for each part to become ready. Generous because CI machines
# are small (2 cores) and a cold JVM is slow there.
WAIT_S=${OTP_STACK_WAIT_S:-90}

say() { printf 'stack: %s\n' "$*"; }
die() {
    printf 'stack: error: %s\n' "$*" >&2
    exit 1
}

# Wall-clock timestamps, only used to report how long startup took.
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1fs", b - a }'; }

port_open() {
    # A connect to loopback is refused instantly when nothing listens; the
    # timeout only guards against a wedged listener.
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Refuse to start when someone else holds our port: otherwise the new process
# dies on bind and, worse, our readiness probe could talk to the stranger.
require_port_free() {
    if port_open "$1"; then
        die "port $1 ($2) is already in use by a process this stack did not start; stop it or set $3"
    fi
}

# A part that is already running keeps the ports it started with; waiting on
# the newly requested port would only time out, so say so at once.
require_same_port() {
    if [[ $2 != "$3" ]]; then
        die "$1 is already running on port(s) $2, not $3; run 'bash stack/stack.sh down' first"
    fi
}

# Our daemons are reparented to this machine's init, which reaps exited
# children only now and then; a zombie still passes kill -0, so look at the
# process state too, or every stop would wait for the reaper.
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# A pid file alone is not proof: after a reboot the pid may belong to an
# unrelated process, so the command line must match too.
pid_running() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$pattern"* ]]
}

# Polls until $3 succeeds; fails fast if the process died ($2 fails) so the
# user sees the log pointer immediately instead of after the whole timeout.
wait_ready() {
    local name=$1 alive=$2 ready=$3 started=$4 logs=$5
    local deadline=$((SECONDS + WAIT_S))
    LAST_PROBE_ERROR=
    until $ready; do
        if ! $alive; then
            die "$name exited during startup; see $logs"
        fi
        if ((SECONDS >= deadline)); then
            die "$name not ready after ${WAIT_S}s (${LAST_PROBE_ERROR:-no answer}); see $logs; 'bash stack/stack.sh down' cleans up"
        fi
        sleep 0.3
    done
    say "$name ready after $(since "$started")"
}

# From / so that tools which look at their working directory (initdb does)
# work even when postgres may not enter the checkout.
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

# ---------------------------------------------------------------- deps ---

APT_UPDATED=0
apt_install() {
    if ((APT_UPDATED == 0)); then
        apt-get update
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

pg_bin() {
    local bins=(/usr/lib/postgresql/*/bin/postgres)
    [[ -x ${bins[0]} ]] || return 1
    # Newest major version wins if several are installed.
    printf '%s\n' "${bins[@]}" | sort -V | tail -n 1 | xargs dirname
}

deps_postgres() {
    pg_bin >/dev/null && return 0
    say "installing PostgreSQL from Debian"
    apt_install postgresql
    # The package creates and starts a 'main' cluster on 5432. We run our own
    # data directory, so keep that one from running now or on the next boot.
    if command -v pg_lsclusters >/dev/null; then
        local ver name
        while read -r ver name _; do
            pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
            echo manual >"/etc/postgresql/$ver/$name/start.conf"
        done < <(pg_lsclusters -h)
    fi
    service postgresql stop >/dev/null 2>&1 || true
    pg_bin >/dev/null || die "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"
}

deps_java() {
    command -v java >/dev/null && command -v mvn >/dev/null && return 0
    say "installing Java and Maven from Debian"
    apt_install openjdk-17-jre-headless maven
}

# The jars are keyed on the pom's checksum, so bumping the Kafka version in
# stack/kafka/pom.xml refreshes them on the next deps/up.
deps_kafka_libs() {
    local sum
    sum=$(sha256sum stack/kafka/pom.xml | cut -d' ' -f1)
    if [[ -f $KAFKA_LIBS/.pom.sha256 && $(<"$KAFKA_LIBS/.pom.sha256") == "$sum" ]] &&
        compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
        return 0
    fi
    if kafka_running; then
        say "warning: stack/kafka/pom.xml changed but Kafka is running; run down and up to switch jars"
        return 0
    fi
    say "resolving Kafka broker jars with Maven"
    # Resolve into a scratch dir and swap it in whole: an interrupted download
    # must not leave a half-filled libs/ that looks complete next time.
    local tmp=$KAFKA_DIR/libs.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! (cd stack/kafka && mvn -q -B dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime) >"$LOGS/mvn.log" 2>&1; then
        tail -n 30 "$LOGS/mvn.log" >&2
        rm -rf "$tmp"
        die "maven could not resolve the Kafka jars; see $LOGS/mvn.log"
    fi
    echo "$sum" >"$tmp/.pom.sha256"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
}

cmd_deps() {
    mkdir -p "$RUN" "$LOGS" "$KAFKA_DIR"
    deps_postgres
    deps_java
    deps_kafka_libs
}

# --------------------------------------------------------------- kafka ---

KAFKA_JAVA=(java -cp "$KAFKA_LIBS/*"
    -Dkafka.logs.dir="$LOGS"
    -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.xml")

kafka_running() { pid_running "$KAFKA_PID" kafka.Kafka; }
# server.properties is only rewritten on start, so it shows the running ports.
kafka_ports() { sed -n 's/^listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\),CONTROLLER:\/\/127.0.0.1:\([0-9]*\)$/\1 \2/p' "$KAFKA_PROPS" 2>/dev/null; }

kafka_ready() {
    port_open "$OTP_KAFKA_PORT" || {
        LAST_PROBE_ERROR="port $OTP_KAFKA_PORT closed"
        return 1
    }
    LAST_PROBE_ERROR=$("$PY" -m stack.probe kafka "127.0.0.1:$OTP_KAFKA_PORT" 2>&1)
}

# Rewritten on every start so a changed OTP_KAFKA_*PORT takes effect; the
# static voter list is not stored in meta.properties, so that is safe.
write_kafka_properties() {
    cat >"$KAFKA_PROPS" <<EOF
# Generated by stack/stack.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$OTP_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$OTP_KAFKA_PORT,CONTROLLER://127.0.0.1:$OTP_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$OTP_KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA

# One node: every internal topic must be satisfiable with a single replica,
# or group/transaction coordinators never come up.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

num.partitions=6
# Tests start consumers constantly; the 3 s default delay would stall each.
group.initial.rebalance.delay.ms=0
# Topics are created explicitly by the services, so a typo fails loudly
# instead of silently creating a new topic.
auto.create.topics.enable=false
EOF
}

KAFKA_STARTED_AT=
start_kafka() {
    if kafka_running; then
        require_same_port kafka "$(kafka_ports)" "$OTP_KAFKA_PORT $OTP_KAFKA_CONTROLLER_PORT"
        say "kafka already running (pid $(<"$KAFKA_PID"))"
        return 0
    fi
    require_port_free "$OTP_KAFKA_PORT" kafka OTP_KAFKA_PORT
    require_port_free "$OTP_KAFKA_CONTROLLER_PORT" "kafka controller" OTP_KAFKA_CONTROLLER_PORT
    mkdir -p "$KAFKA_DATA"
    write_kafka_properties
    if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
        local uuid
        uuid=$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid)
        "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$uuid" -c "$KAFKA_PROPS" \
            >>"$LOGS/kafka-format.log" 2>&1 ||
            die "formatting Kafka storage failed; see $LOGS/kafka-format.log"
        say "kafka storage formatted (cluster id $uuid)"
    fi
    KAFKA_STARTED_AT=$(now)
    # setsid: own session, so the broker survives the shell that started it
    # and a Ctrl-C in that terminal does not reach it.
    setsid "${KAFKA_JAVA[@]}" -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
        kafka.Kafka "$KAFKA_PROPS" </dev/null >>"$LOGS/kafka.out" 2>&1 9>&- &
    echo $! >"$KAFKA_PID"
    say "kafka starting (pid $!)"
}

# ------------------------------------------------------------ postgres ---

PG_BIN=
pg() { as_postgres "$PG_BIN/$1" "${@:2}"; }

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && pg pg_ctl -D "$PG_DATA" status >/dev/null 2>&1; }
pg_pid() { head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true; }
pg_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true; }
pg_ready() { pg pg_isready -q -h 127.0.0.1 -p "$OTP_PG_PORT"; }

psql_admin() {
    # Superuser over the private unix socket with peer auth: no superuser
    # password exists anywhere.
    pg psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$OTP_PG_PORT" -U postgres -d postgres "$@"
}

# Rewritten on every start, like the Kafka properties, so port changes apply.
write_pg_config() {
    cat >"$PG_DATA/stack.conf" <<EOF
# Generated by stack/stack.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $OTP_PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 300
fsync = on
EOF
    cat >"$PG_DATA/pg_hba.conf" <<EOF
# Generated by stack/stack.sh. Superuser only via the unix socket as the
# postgres OS user; everyone else by password over loopback TCP.
local all postgres peer
host  all all 127.0.0.1/32 scram-sha-256
EOF
    chown postgres:postgres "$PG_DATA/stack.conf" "$PG_DATA/pg_hba.conf"
    chmod 600 "$PG_DATA/stack.conf" "$PG_DATA/pg_hba.conf"
}

choose_pg_dir() {
    [[ -e $PG_LINK || -L $PG_LINK ]] && return 0
    if as_postgres test -x "$STACK"; then
        return 0
    fi
    local home
    home=$(getent passwd postgres | cut -d: -f6)
    PG_DIR=$home/otp-stack/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
    PG_DATA=$PG_DIR/data
    PG_SOCK=$PG_DIR/run
    install -d -o postgres -g postgres -m 700 "$home/otp-stack" "$PG_DIR"
    ln -s "$PG_DIR" "$PG_LINK"
    say "postgres cannot enter $ROOT; keeping its data in $PG_DIR"
}

start_pg() {
    PG_BIN=$(pg_bin) || die "no PostgreSQL found; run 'bash stack/stack.sh deps'"
    choose_pg_dir
    # The checkout belongs to root, but PostgreSQL refuses to run as root and
    # insists on owning its data directory.
    install -d -o postgres -g postgres -m 700 "$PG_DIR" "$PG_SOCK"

    if [[ ! -f $PG_DATA/PG_VERSION ]]; then
        pg initdb -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=peer --auth-host=scram-sha-256 >"$LOGS/postgres-initdb.log" 2>&1 ||
            die "initdb failed; see $LOGS/postgres-initdb.log"
        # Our settings live in their own file so initdb's defaults stay
        # untouched and readable.
        echo "include 'stack.conf'" >>"$PG_DATA/postgresql.conf"
        say "postgres data directory initialised"
    fi

    local started
    started=$(now)
    if pg_running; then
        require_same_port postgres "$(pg_port)" "$OTP_PG_PORT"
        say "postgres already running (pid $(pg_pid))"
    else
        require_port_free "$OTP_PG_PORT" postgres OTP_PG_PORT
        write_pg_config
        # -w makes pg_ctl itself wait for startup; the wait below then only
        # confirms the TCP listener that the services use.
        # The log is opened by this (root) shell and inherited, rather than
        # via pg_ctl -l, so it works even where postgres cannot reach .stack/.
        pg pg_ctl -D "$PG_DATA" -w -t "$WAIT_S" start >>"$LOGS/postgres.log" 2>&1 9>&- ||
            die "postgres did not start; see $LOGS/postgres.log"
    fi
    wait_ready postgres pg_running pg_ready "$started" "$LOGS/postgres.log"
    ensure_pg_role
}

# Idempotent: creates role and database once, and re-applies the password on
# every up so .secrets/pg_password is always the truth.
ensure_pg_role() {
    local pw squote="'"
    pw=$(tr -d '\r\n' <"$OTP_SECRETS_DIR/pg_password")
    [[ -n $pw ]] || die "$OTP_SECRETS_DIR/pg_password is empty"
    # Doubling quotes keeps any password a valid SQL literal.
    pw=${pw//$squote/$squote$squote}
    # Fed on stdin, never argv, so the password does not show up in ps.
    psql_admin <<SQL
SET log_statement = 'none';
SELECT 'CREATE ROLE otp LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'otp') \gexec
ALTER ROLE otp WITH LOGIN PASSWORD '$pw';
SELECT 'CREATE DATABASE otp OWNER otp'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'otp') \gexec
ALTER DATABASE otp OWNER TO otp;
SQL
}

# ---------------------------------------------------------------- smtp ---

SMTP_STARTED_AT=
smtp_running() { pid_running "$SMTP_PID" stack.smtp_sink; }
smtp_port() { tr '\0' '\n' <"/proc/$(<"$SMTP_PID")/cmdline" 2>/dev/null | sed -n '/^--port$/{n;p}'; }

smtp_ready() {
    LAST_PROBE_ERROR=$("$PY" -m stack.probe smtp 127.0.0.1 "$OTP_SMTP_PORT" 2>&1)
}

start_smtp() {
    if smtp_running; then
        require_same_port "smtp sink" "$(smtp_port)" "$OTP_SMTP_PORT"
        say "smtp sink already running (pid $(<"$SMTP_PID"))"
        return 0
    fi
    require_port_free "$OTP_SMTP_PORT" smtp OTP_SMTP_PORT
    # The sink makes the Maildir itself; the parent holds the refuse switch.
    mkdir -p "$(dirname "$OTP_MAILDIR")"
    SMTP_STARTED_AT=$(now)
    setsid "$PY" -m stack.smtp_sink --host 127.0.0.1 --port "$OTP_SMTP_PORT" \
        --maildir "$OTP_MAILDIR" </dev/null >>"$LOGS/smtp.log" 2>&1 9>&- &
    echo $! >"$SMTP_PID"
    say "smtp sink starting (pid $!)"
}

# ------------------------------------------------------------ commands ---

cmd_up() {
    cmd_deps
    local started
    started=$(now)
    # Kafka's JVM is the slow one, so launch it first and set up PostgreSQL
    # and the sink while it boots.
    start_kafka
    start_pg
    start_smtp
    wait_ready kafka kafka_running kafka_ready "${KAFKA_STARTED_AT:-$(now)}" \
        "$LOGS/kafka.log and $LOGS/kafka.out"
    wait_ready "smtp sink" smtp_running smtp_ready "${SMTP_STARTED_AT:-$(now)}" "$LOGS/smtp.log"
    say "all up after $(since "$started")"
}

# SIGTERM first so Kafka can shut down cleanly (it otherwise replays its log
# on next start); SIGKILL only if it hangs.
stop_pid() {
    local name=$1 pidfile=$2 pattern=$3 pid i
    if ! pid_running "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        say "$name not running"
        return 0
    fi
    pid=$(<"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        say "$name did not stop within 30s; killing pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "$name stopped"
}

stop_pg() {
    PG_BIN=$(pg_bin) || {
        say "postgres not installed"
        return 0
    }
    if ! pg_running; then
        say "postgres not running"
        return 0
    fi
    # fast = roll back open transactions and disconnect clients, but still a
    # clean checkpoint, so no crash recovery on the next start.
    if ! pg pg_ctl -D "$PG_DATA" stop -m fast -w -t 60 >/dev/null; then
        say "postgres did not stop in 60s; forcing immediate shutdown"
        pg pg_ctl -D "$PG_DATA" stop -m immediate -w -t 30 >/dev/null || true
    fi
    say "postgres stopped"
}

cmd_down() {
    # Reverse start order: clients of Kafka/PostgreSQL are not ours to stop.
    stop_pid "smtp sink" "$SMTP_PID" stack.smtp_sink
    stop_pg
    stop_pid kafka "$KAFKA_PID" kafka.Kafka
}

# One part down and up again, for outage drills (the chaos run); the others keep running.
cmd_restart() {
    cmd_deps
    case "${1:-}" in
    kafka)
        stop_pid kafka "$KAFKA_PID" kafka.Kafka
        start_kafka
        wait_ready kafka kafka_running kafka_ready "${KAFKA_STARTED_AT:-$(now)}" \
            "$LOGS/kafka.log and $LOGS/kafka.out"
        ;;
    postgres)
        stop_pg
        start_pg
        ;;
    smtp)
        stop_pid "smtp sink" "$SMTP_PID" stack.smtp_sink
        start_smtp
        wait_ready "smtp sink" smtp_running smtp_ready "${SMTP_STARTED_AT:-$(now)}" "$LOGS/smtp.log"
        ;;
    *) die "usage: bash stack/stack.sh restart kafka|postgres|smtp" ;;
    esac
}

cmd_status() {
    # Running parts report the ports they actually hold, which may differ
    # from the current environment.
    local state pid ports
    if kafka_running; then
        state=running pid=$(<"$KAFKA_PID") ports=$(kafka_ports)
    else
        state=stopped pid=- ports="$OTP_KAFKA_PORT $OTP_KAFKA_CONTROLLER_PORT"
    fi
    printf '%-10s %-8s pid %-8s port %s (controller %s)\n' kafka "$state" "$pid" ${ports}
    if PG_BIN=$(pg_bin) && pg_running; then
        state=running pid=$(pg_pid) ports=$(pg_port)
    else
        state=stopped pid=- ports=$OTP_PG_PORT
    fi
    printf '%-10s %-8s pid %-8s port %s\n' postgres "$state" "$pid" "$ports"
    if smtp_running; then
        state=running pid=$(<"$SMTP_PID") ports=$(smtp_port)
    else
        state=stopped pid=- ports=$OTP_SMTP_PORT
    fi
    printf '%-10s %-8s pid %-8s port %s\n' smtp "$state" "$pid" "$ports"
}

cmd_reset() {
    cmd_down
    # .secrets/ is kept on purpose: the keys and password belong to the
    # developer, not to the data.
    # The symlink case: PostgreSQL's data lives outside .stack/.
    [[ -L $PG_LINK ]] && rm -rf "$PG_DIR"
    rm -rf "$STACK"
    say "removed $STACK"
}

# Serialise commands that change state: tests or parallel make jobs may run
# `up` at the same time, and two of them must not both start a broker.
# Every daemon is started with fd 9 closed (9>&-): one that inherited the
# lock would hold it for its whole life and block every later command.
lock() {
    mkdir -p "$STACK"
    exec 9>"$STACK/stack.lock"
    flock 9
}

case "${1:-}" in
deps) lock && cmd_deps ;;
up) lock && cmd_up ;;
down) lock && cmd_down ;;
status) cmd_status ;;
reset) lock && cmd_reset ;;
restart) lock && cmd_restart "${2:-}" ;;
*)
    echo "usage: bash stack/stack.sh deps|up|down|status|reset|restart kafka|postgres|smtp" >&2
    exit 2
    ;;
esac
