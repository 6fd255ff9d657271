#!/usr/bin/env bash
# Local services for Strata's tests and local runs: a real single-node Apache Kafka (KRaft,
# assembled from Maven Central jars, see scripts/kafka/pom.xml) and a real Redis server, both on
# 127.0.0.1.
#
#   scripts/services.sh up     [kafka|redis ...]   start (or reuse) and wait until ready
#   scripts/services.sh down   [kafka|redis ...]   stop what this script started (by pid)
#   scripts/services.sh status                     say what runs (exit 0 only if all run)
#   scripts/services.sh clean                      down, then delete the state folder
#
# `up` prints these lines on stdout (everything else goes to stderr):
#   KAFKA_BROKERS=127.0.0.1:PORT
#   KAFKA_SASL_BROKERS=127.0.0.1:PORT   the same broker, SASL/PLAIN (user strata, password
#                                        strata-test-secret), for tests of Kafka authentication
#   REDIS_URL=redis://127.0.0.1:PORT
#
# Environment:
#   STRATA_KAFKA_PORT            broker port (19092)
#   STRATA_KAFKA_SASL_PORT       the broker's SASL/PLAIN port (19094)
#   STRATA_KAFKA_TLS_PORT        unset; set, the broker also listens with TLS there (certificate of
#                                test/fixtures/tls) and `up` prints KAFKA_TLS_BROKERS=127.0.0.1:PORT
#   STRATA_KAFKA_CONTROLLER_PORT KRaft controller port (19093)
#   STRATA_REDIS_PORT            Redis port (16379)
#   STRATA_SERVICES_DIR          state: pids, data, config, logs (<repo>/.services)
#   STRATA_KAFKA_START_TIMEOUT   seconds to wait for Kafka to be ready (180)
#   STRATA_REDIS_START_TIMEOUT   seconds to wait for Redis to be ready (30)
#   STRATA_STOP_TIMEOUT          seconds between SIGTERM and SIGKILL on `down` (30)
#   XDG_CACHE_HOME               the Kafka jars are cached in $XDG_CACHE_HOME/strata/kafka-3.9.1/libs
set -euo pipefail

readonly KAFKA_VERSION=3.9.1
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_DIR
readonly KAFKA_POM="$REPO_DIR/scripts/kafka/pom.xml"
readonly KAFKA_PROBE="$REPO_DIR/scripts/kafka/metadata-probe.mjs"

readonly KAFKA_PORT="${STRATA_KAFKA_PORT:-19092}"
readonly KAFKA_CONTROLLER_PORT="${STRATA_KAFKA_CONTROLLER_PORT:-19093}"
readonly KAFKA_SASL_PORT="${STRATA_KAFKA_SASL_PORT:-19094}"
# Set, the broker also listens with TLS there, with the certificate of test/fixtures/tls (tests of
# STRATA_KAFKA_TLS, on a private broker; the shared one has no TLS listener).
readonly KAFKA_TLS_PORT="${STRATA_KAFKA_TLS_PORT:-}"
readonly REDIS_PORT="${STRATA_REDIS_PORT:-16379}"
readonly KAFKA_START_TIMEOUT="${STRATA_KAFKA_START_TIMEOUT:-180}"
readonly REDIS_START_TIMEOUT="${STRATA_REDIS_START_TIMEOUT:-30}"
readonly STOP_TIMEOUT="${STRATA_STOP_TIMEOUT:-30}"

STATE_DIR="${STRATA_SERVICES_DIR:-$REPO_DIR/.services}"
readonly LIBDIR="${XDG_CACHE_HOME:-$HOME/.cache}/strata/kafka-$KAFKA_VERSION/libs"

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

check_port_number() { # name value
  if [[ ! "$2" =~ ^[0-9]{1,5}$ ]] || ((10#$2 < 1 || 10#$2 > 65535)); then
    die "$1 must be a TCP port number (1-65535), got '$2'"
  fi
}

# ---------------------------------------------------------------------------------------------
# Small helpers

port_open() { # port -> 0 when something accepts TCP connections on 127.0.0.1:port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() { # pid
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null
}

pid_args() { # pid -> the process's command line
  ps -p "$1" -o args= 2>/dev/null || true
}

read_pid() { # pidfile -> pid or empty
  if [[ -f "$1" ]]; then tr -dc '0-9' <"$1"; fi
}

# Who listens on a port, for error messages ("users:(("java",pid=123,fd=45))").
port_owner() { # port
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:.*' | head -n1 || true
  fi
}

log_tail() { # file [lines]
  local file="$1" lines="${2:-40}"
  if [[ -s "$file" ]]; then
    printf 'services: last %s lines of %s:\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
  else
    printf 'services: %s is empty or missing\n' "$file" >&2
  fi
}

APT_UPDATED=0
# Install a Debian package when its command is missing and we are root with apt-get;
# otherwise fail naming what is missing.
ensure_command() { # command package why
  local cmd="$1" pkg="$2" why="$3"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [[ "$(id -u)" -ne 0 ]]; then
    die "'$cmd' ($why) is not on PATH and this script is not running as root, so it cannot install it: run 'sudo apt-get install -y $pkg' (Debian/Ubuntu) or put '$cmd' on PATH"
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    die "'$cmd' ($why) is not on PATH and apt-get is not available to install Debian's '$pkg': install '$cmd' with your system's package manager"
  fi
  log "'$cmd' is missing: installing Debian package '$pkg' with apt-get"
  apt_install "$pkg" "'$cmd' ($why)"
  command -v "$cmd" >/dev/null 2>&1 || die "installed '$pkg' but '$cmd' is still not on PATH ($PATH)"
}

apt_install() { # packages... what-for (the last argument)
  local what="${*: -1}" pkgs=("${@:1:$#-1}")
  mkdir -p "$LOG_DIR"
  if [[ "$APT_UPDATED" -eq 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOG_DIR/apt.log" 2>&1 || {
      log_tail "$LOG_DIR/apt.log" 20
      die "'apt-get update' failed while trying to install ${pkgs[*]} (for $what); see $LOG_DIR/apt.log"
    }
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >>"$LOG_DIR/apt.log" 2>&1 || {
    log_tail "$LOG_DIR/apt.log" 20
    die "'apt-get install -y ${pkgs[*]}' failed, so $what is missing; see $LOG_DIR/apt.log"
  }
}

# The Python client's test (test/integration/python-client.test.ts) runs Debian's python3 with
# Debian's grpcio and protobuf, and protoc to generate the message classes.
ensure_python_client_deps() {
  ensure_command protoc protobuf-compiler "the protobuf compiler, for the Python client's test"
  /usr/bin/python3 -c 'import grpc, google.protobuf' >/dev/null 2>&1 && return 0
  [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1 ||
    die "Debian's python3 lacks grpc or protobuf (for the Python client's test): run 'sudo apt-get install -y python3-grpcio python3-protobuf'"
  log "Debian's python3 lacks grpc or protobuf: installing python3-grpcio and python3-protobuf with apt-get"
  apt_install python3-grpcio python3-protobuf "grpc and protobuf for Debian's python3"
}

# Start a command in the background, detached from our stdin/stdout/stderr, the lock fd and
# (when setsid exists) our session, so that callers waiting on our output (execFile) and
# terminal signals do not involve it. Sets STARTED_PID.
start_background() { # logfile cmd...
  local logfile="$1"
  shift
  if command -v setsid >/dev/null 2>&1; then
    # Not a process-group leader in a script, so setsid execs in place: $! is the service's pid.
    setsid "$@" </dev/null >"$logfile" 2>&1 9>&- &
  else
    nohup "$@" </dev/null >"$logfile" 2>&1 9>&- &
  fi
  STARTED_PID=$!
}

# SIGTERM a pid, wait, SIGKILL after the timeout. Returns when the process is gone.
stop_pid() { # name pid timeout
  local name="$1" pid="$2" timeout="$3" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while pid_alive "$pid"; do
    if ((waited >= timeout * 10)); then
      log "$name (pid $pid) still running ${timeout}s after SIGTERM: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  # After SIGKILL the process is gone once reaped; give the kernel a moment.
  for _ in $(seq 1 50); do pid_alive "$pid" || return 0; sleep 0.1; done
  pid_alive "$pid" && die "$name (pid $pid) did not exit even after SIGKILL"
  return 0
}

# ---------------------------------------------------------------------------------------------
# Kafka

KAFKA_DIR="" KAFKA_PIDFILE="" KAFKA_PORTFILE="" KAFKA_DATA="" KAFKA_LOG="" LOG_DIR=""
set_paths() {
  LOG_DIR="$STATE_DIR/logs"
  KAFKA_DIR="$STATE_DIR/kafka"
  KAFKA_PIDFILE="$KAFKA_DIR/kafka.pid"
  KAFKA_PORTFILE="$KAFKA_DIR/kafka.port"
  KAFKA_DATA="$KAFKA_DIR/data"
  KAFKA_LOG="$LOG_DIR/kafka.log"
  REDIS_DIR="$STATE_DIR/redis"
  REDIS_PIDFILE="$REDIS_DIR/redis.pid"
  REDIS_PORTFILE="$REDIS_DIR/redis.port"
  REDIS_LOG="$LOG_DIR/redis.log"
}

# The pid of the Kafka broker this state folder started, if it still runs (else empty).
kafka_pid() {
  local pid
  pid="$(read_pid "$KAFKA_PIDFILE")"
  if pid_alive "$pid" && [[ "$(pid_args "$pid")" == *"kafka.Kafka $KAFKA_DIR/server.properties"* ]]; then
    printf '%s' "$pid"
  fi
}

kafka_java_check() {
  ensure_command java openjdk-17-jre-headless "Java runtime for the Kafka broker"
  local spec major
  spec="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
  major="${spec#1.}"
  major="${major%%.*}"
  if [[ ! "$major" =~ ^[0-9]+$ ]] || ((major < 11)); then
    die "Kafka $KAFKA_VERSION needs Java 11 or newer; 'java' on PATH is version '${spec:-unknown}' ($(command -v java))"
  fi
}

kafka_jars() {
  if [[ -f "$LIBDIR/.complete" ]]; then return 0; fi
  ensure_command mvn maven "Maven, to fetch the Kafka $KAFKA_VERSION jars from Maven Central"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBDIR (first run only)"
  local tmp="$LIBDIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp" "$LOG_DIR"
  if ! mvn -B -q -f "$KAFKA_POM" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime >"$LOG_DIR/maven.log" 2>&1; then
    rm -rf "$tmp"
    log_tail "$LOG_DIR/maven.log" 40
    die "Maven could not fetch the Kafka $KAFKA_VERSION jars (is Maven Central reachable?); see $LOG_DIR/maven.log"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
    rm -rf "$tmp"
    die "Maven ran but kafka_2.13-$KAFKA_VERSION.jar is not among the copied jars"
  }
  touch "$tmp/.complete"
  rm -rf "$LIBDIR"
  mv "$tmp" "$LIBDIR"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DIR" "$LOG_DIR"
  local tls_listener="" tls_map="" tls_keystore=""
  if [[ -n "$KAFKA_TLS_PORT" ]]; then
    cat "$REPO_DIR/test/fixtures/tls/key.pem" "$REPO_DIR/test/fixtures/tls/cert.pem" >"$KAFKA_DIR/tls-keystore.pem"
    tls_listener=",SSL://127.0.0.1:$KAFKA_TLS_PORT"
    tls_map=",SSL:SSL"
    tls_keystore="ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_DIR/tls-keystore.pem"
  fi
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by scripts/services.sh on every start: edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT$tls_listener,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT$tls_listener
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT$tls_map
$tls_keystore
# Clients that authenticate (tests of STRATA_KAFKA_SASL_*): one user, strata / strata-test-secret.
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="strata" password="strata-test-secret" user_strata="strata-test-secret";
log.dirs=$KAFKA_DATA
num.partitions=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<'EOF'
# Written by scripts/services.sh: the broker logs to stdout, which goes to .services/logs/kafka.log.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
  cat >"$KAFKA_DIR/tools-log4j.properties" <<'EOF'
# Written by scripts/services.sh: kafka.tools.StorageTool logs warnings to stderr.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

kafka_log4j_opt() { printf '%s' "-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties"; }
# StorageTool prints its results on stdout: its own log lines go to stderr, warnings only.
kafka_tools_log4j_opt() { printf '%s' "-Dlog4j.configuration=file:$KAFKA_DIR/tools-log4j.properties"; }

# Format the data dir once. A data dir without meta.properties (never formatted, or a
# format that was interrupted) is replaced by a fresh one.
kafka_format() {
  if [[ -f "$KAFKA_DATA/meta.properties" ]]; then return 0; fi
  rm -rf "$KAFKA_DATA"
  local cluster_id
  cluster_id="$(java -cp "$LIBDIR/*" "$(kafka_tools_log4j_opt)" kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka-format.log" | tail -n1)"
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || {
    log_tail "$LOG_DIR/kafka-format.log" 20
    die "kafka.tools.StorageTool random-uuid did not print a cluster id (got '$cluster_id')"
  }
  log "formatting Kafka data dir $KAFKA_DATA (cluster id $cluster_id)"
  if ! java -cp "$LIBDIR/*" "$(kafka_tools_log4j_opt)" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >>"$LOG_DIR/kafka-format.log" 2>&1; then
    log_tail "$LOG_DIR/kafka-format.log" 20
    rm -rf "$KAFKA_DATA"
    die "kafka.tools.StorageTool format failed; see $LOG_DIR/kafka-format.log"
  fi
}

# A real metadata round trip: kafkajs (from the repo's node_modules) when available,
# else kcat -L, else only the open port.
KAFKA_PROBE_WARNED=0
kafka_metadata_ok() {
  local rc=0
  if command -v node >/dev/null 2>&1; then
    timeout 20 node "$KAFKA_PROBE" "127.0.0.1:$KAFKA_PORT" >/dev/null 2>>"$LOG_DIR/kafka-probe.log" || rc=$?
    [[ $rc -ne 3 ]] && return "$rc" # 3: kafkajs is not installed
  fi
  if command -v kcat >/dev/null 2>&1; then
    timeout 20 kcat -L -b "127.0.0.1:$KAFKA_PORT" -m 10 >/dev/null 2>>"$LOG_DIR/kafka-probe.log"
    return $?
  fi
  if [[ "$KAFKA_PROBE_WARNED" -eq 0 ]]; then
    log "neither kafkajs (node_modules) nor kcat is available: Kafka readiness is the open port only"
    KAFKA_PROBE_WARNED=1
  fi
  return 0
}

kafka_wait_ready() { # pid
  local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  : >"$LOG_DIR/kafka-probe.log"
  while true; do
    if ! pid_alive "$pid"; then
      log_tail "$KAFKA_LOG" 40
      rm -f "$KAFKA_PIDFILE" "$KAFKA_PORTFILE"
      die "Kafka (pid $pid) exited before it was ready; see $KAFKA_LOG"
    fi
    if port_open "$KAFKA_PORT" && kafka_metadata_ok; then return 0; fi
    if ((SECONDS >= deadline)); then
      log_tail "$KAFKA_LOG" 40
      if [[ -s "$LOG_DIR/kafka-probe.log" ]]; then log_tail "$LOG_DIR/kafka-probe.log" 10; fi
      die "Kafka (pid $pid) was not ready on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s; it is still running: see $KAFKA_LOG, stop it with '$0 down'"
    fi
    sleep 1
  done
}

kafka_up() {
  local pid
  pid="$(kafka_pid)"
  if [[ -n "$pid" ]]; then
    local running_port
    running_port="$(read_pid "$KAFKA_PORTFILE")"
    if [[ -n "$running_port" && "$running_port" != "$KAFKA_PORT" ]]; then
      die "Kafka from $STATE_DIR already runs on port $running_port (pid $pid), not $KAFKA_PORT: run '$0 down' first or use another STRATA_SERVICES_DIR"
    fi
    # A broker started by an older version of this script lacks listeners the tests need.
    local listener
    for listener in "SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT" ${KAFKA_TLS_PORT:+"SSL://127.0.0.1:$KAFKA_TLS_PORT"}; do
      grep -q "^listeners=.*$listener" "$KAFKA_DIR/server.properties" 2>/dev/null ||
        die "Kafka (pid $pid) runs without the listener $listener (started by an older scripts/services.sh?): run '$0 down kafka', then '$0 up'"
    done
    log "kafka: already running (pid $pid), reusing it"
    kafka_wait_ready "$pid"
    return 0
  fi
  rm -f "$KAFKA_PIDFILE" "$KAFKA_PORTFILE"

  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$port"; then
      die "port 127.0.0.1:$port (Kafka) is already in use by a process that services.sh did not start $(port_owner "$port"); stop it or choose other ports with STRATA_KAFKA_PORT / STRATA_KAFKA_CONTROLLER_PORT"
    fi
  done
  [[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "STRATA_KAFKA_PORT and STRATA_KAFKA_CONTROLLER_PORT must differ"

  kafka_java_check
  kafka_jars
  kafka_write_config
  kafka_format

  [[ -f "$KAFKA_LOG" ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.prev"
  log "kafka: starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), log $KAFKA_LOG"
  start_background "$KAFKA_LOG" java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true "-Dkafka.logs.dir=$LOG_DIR" "$(kafka_log4j_opt)" \
    -cp "$LIBDIR/*" kafka.Kafka "$KAFKA_DIR/server.properties"
  pid="$STARTED_PID"
  printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
  printf '%s\n' "$KAFKA_PORT" >"$KAFKA_PORTFILE"
  local started=$SECONDS
  kafka_wait_ready "$pid"
  log "kafka: ready (pid $pid) after $((SECONDS - started))s"
}

kafka_down() {
  local pid
  pid="$(kafka_pid)"
  if [[ -z "$pid" ]]; then
    local stale
    stale="$(read_pid "$KAFKA_PIDFILE")"
    [[ -n "$stale" ]] && log "kafka: pid file names $stale, which is not our broker any more: removing it"
    rm -f "$KAFKA_PIDFILE" "$KAFKA_PORTFILE"
    log "kafka: not running"
    return 0
  fi
  log "kafka: stopping (pid $pid)"
  stop_pid kafka "$pid" "$STOP_TIMEOUT"
  rm -f "$KAFKA_PIDFILE" "$KAFKA_PORTFILE"
  log "kafka: stopped"
}

kafka_status() {
  local pid port
  pid="$(kafka_pid)"
  port="$(read_pid "$KAFKA_PORTFILE")"
  port="${port:-$KAFKA_PORT}"
  if [[ -z "$pid" ]]; then
    echo "kafka: stopped"
    return 1
  fi
  if port_open "$port"; then
    echo "kafka: running pid=$pid addr=127.0.0.1:$port"
    return 0
  fi
  echo "kafka: starting-or-unresponsive pid=$pid addr=127.0.0.1:$port (port not answering)"
  return 1
}

# ---------------------------------------------------------------------------------------------
# Redis

REDIS_DIR="" REDIS_PIDFILE="" REDIS_PORTFILE="" REDIS_LOG=""

redis_pid() {
  local pid
  pid="$(read_pid "$REDIS_PIDFILE")"
  if pid_alive "$pid" && [[ "$(pid_args "$pid")" == *redis-server* ]]; then
    printf '%s' "$pid"
  fi
}

redis_ping() { # port
  [[ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == "PONG" ]]
}

redis_wait_ready() { # pid
  local pid="$1" deadline=$((SECONDS + REDIS_START_TIMEOUT))
  while true; do
    if ! pid_alive "$pid"; then
      log_tail "$REDIS_LOG" 30
      rm -f "$REDIS_PIDFILE" "$REDIS_PORTFILE"
      die "Redis (pid $pid) exited before it was ready; see $REDIS_LOG"
    fi
    redis_ping "$REDIS_PORT" && return 0
    if ((SECONDS >= deadline)); then
      log_tail "$REDIS_LOG" 30
      die "Redis (pid $pid) did not answer PING on 127.0.0.1:$REDIS_PORT within ${REDIS_START_TIMEOUT}s; see $REDIS_LOG, stop it with '$0 down'"
    fi
    sleep 0.2
  done
}

redis_up() {
  ensure_command redis-server redis-server "the Redis server"
  ensure_command redis-cli redis-tools "the Redis command-line client, for readiness checks"
  local pid
  pid="$(redis_pid)"
  if [[ -n "$pid" ]]; then
    local running_port
    running_port="$(read_pid "$REDIS_PORTFILE")"
    if [[ -n "$running_port" && "$running_port" != "$REDIS_PORT" ]]; then
      die "Redis from $STATE_DIR already runs on port $running_port (pid $pid), not $REDIS_PORT: run '$0 down' first or use another STRATA_SERVICES_DIR"
    fi
    log "redis: already running (pid $pid), reusing it"
    redis_wait_ready "$pid"
    return 0
  fi
  rm -f "$REDIS_PIDFILE" "$REDIS_PORTFILE"
  if port_open "$REDIS_PORT"; then
    die "port 127.0.0.1:$REDIS_PORT (Redis) is already in use by a process that services.sh did not start $(port_owner "$REDIS_PORT"); stop it or choose another port with STRATA_REDIS_PORT"
  fi
  mkdir -p "$REDIS_DIR" "$LOG_DIR"
  [[ -f "$REDIS_LOG" ]] && mv -f "$REDIS_LOG" "$REDIS_LOG.prev"
  log "redis: starting redis-server on 127.0.0.1:$REDIS_PORT, log $REDIS_LOG"
  start_background "$REDIS_LOG" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --dir "$REDIS_DIR" --logfile ''
  pid="$STARTED_PID"
  printf '%s\n' "$pid" >"$REDIS_PIDFILE"
  printf '%s\n' "$REDIS_PORT" >"$REDIS_PORTFILE"
  redis_wait_ready "$pid"
  log "redis: ready (pid $pid)"
}

redis_down() {
  local pid
  pid="$(redis_pid)"
  if [[ -z "$pid" ]]; then
    local stale
    stale="$(read_pid "$REDIS_PIDFILE")"
    [[ -n "$stale" ]] && log "redis: pid file names $stale, which is not our redis-server any more: removing it"
    rm -f "$REDIS_PIDFILE" "$REDIS_PORTFILE"
    log "redis: not running"
    return 0
  fi
  log "redis: stopping (pid $pid)"
  stop_pid redis "$pid" "$STOP_TIMEOUT"
  rm -f "$REDIS_PIDFILE" "$REDIS_PORTFILE"
  log "redis: stopped"
}

redis_status() {
  local pid port
  pid="$(redis_pid)"
  port="$(read_pid "$REDIS_PORTFILE")"
  port="${port:-$REDIS_PORT}"
  if [[ -z "$pid" ]]; then
    echo "redis: stopped"
    return 1
  fi
  if command -v redis-cli >/dev/null 2>&1 && redis_ping "$port"; then
    echo "redis: running pid=$pid addr=127.0.0.1:$port"
    return 0
  fi
  echo "redis: starting-or-unresponsive pid=$pid addr=127.0.0.1:$port (no PONG)"
  return 1
}

# ---------------------------------------------------------------------------------------------

lock_state() {
  mkdir -p "$STATE_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE_DIR/.lock"
    flock -w 600 9 || die "another services.sh holds $STATE_DIR/.lock for more than 600s"
  fi
}

select_services() { # args... -> SERVICES
  SERVICES=()
  local s
  for s in "$@"; do
    case "$s" in
      kafka | redis) SERVICES+=("$s") ;;
      *) die "unknown service '$s' (expected kafka or redis)" ;;
    esac
  done
  if [[ ${#SERVICES[@]} -eq 0 ]]; then SERVICES=(kafka redis); fi
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  check_port_number STRATA_KAFKA_PORT "$KAFKA_PORT"
  check_port_number STRATA_KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  check_port_number STRATA_REDIS_PORT "$REDIS_PORT"
  mkdir -p "$STATE_DIR"
  STATE_DIR="$(cd "$STATE_DIR" && pwd)"
  set_paths

  case "$cmd" in
    up)
      select_services "$@"
      lock_state
      local s
      for s in "${SERVICES[@]}"; do "${s}_up"; done
      # kcat is not a service, but the integration tests produce with it.
      if ! command -v kcat >/dev/null 2>&1; then
        (ensure_command kcat kcat "librdkafka's producer, used by the integration tests") ||
          log "warning: kcat is missing; the integration tests that produce with kcat will fail"
      fi
      (ensure_python_client_deps) ||
        log "warning: the Python client's test will fail without protoc and Debian's python3-grpcio and python3-protobuf"
      for s in "${SERVICES[@]}"; do
        case "$s" in
          kafka)
            echo "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
            echo "KAFKA_SASL_BROKERS=127.0.0.1:$KAFKA_SASL_PORT"
            [[ -z "$KAFKA_TLS_PORT" ]] || echo "KAFKA_TLS_BROKERS=127.0.0.1:$KAFKA_TLS_PORT"
            ;;
          redis) echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT" ;;
        esac
      done
      ;;
    down)
      select_services "$@"
      lock_state
      local s
      for s in "${SERVICES[@]}"; do "${s}_down"; done
      ;;
    status)
      [[ $# -eq 0 ]] || die "status takes no arguments"
      local rc=0
      kafka_status || rc=3
      redis_status || rc=3
      echo "state: $STATE_DIR (logs in $LOG_DIR)"
      return "$rc"
      ;;
    clean)
      [[ $# -eq 0 ]] || die "clean takes no arguments"
      lock_state
      kafka_down
      redis_down
      log "removing $STATE_DIR"
      rm -rf "$STATE_DIR"
      ;;
    -h | --help | help)
      usage
      ;;
    *)
      usage
      die "expected a command: up, down, status or clean"
      ;;
  esac
}

main "$@"
