#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for development and integration tests.
#
#   deploy/kafka.sh up        start (idempotent); resolves the jars from Maven Central once
#   deploy/kafka.sh down      stop (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT s)
#   deploy/kafka.sh status    exit 0 when running and answering, 3 when not running, 1 otherwise
#   deploy/kafka.sh restart   down then up, keeping the data
#   deploy/kafka.sh reset     down, then delete the data dir (the jars stay)
#   deploy/kafka.sh topics .. org.apache.kafka.tools.TopicCommand against this broker
#   deploy/kafka.sh logs      tail the broker log
#
# Environment:
#   KAFKA_PORT             client listener, 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener, 127.0.0.1 (default 9093)
#   KAFKA_HOME_DIR         jars, config, data, logs, pid (default <repo>/.kafka)
#   KAFKA_START_TIMEOUT    seconds `up` waits for the broker to answer (default 90)
#   KAFKA_STOP_TIMEOUT     seconds `down` waits before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS        broker heap (default "-Xmx512m -Xms256m")
#   KAFKA_JVM_OPTS         extra broker JVM options
#   JAVA_HOME              Java 17+ to use (default: `java` on PATH)
#   MVN                    Maven command (default: mvn)
# The Kafka version is pinned in deploy/kafka/pom.xml.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
POM="${SCRIPT_DIR}/kafka/pom.xml"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-${REPO_ROOT}/.kafka}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
MVN="${MVN:-mvn}"

HOST=127.0.0.1
BOOTSTRAP="${HOST}:${KAFKA_PORT}"
LIBS_DIR="${KAFKA_HOME_DIR}/libs"
LIBS_MARKER="${LIBS_DIR}/.resolved"
CONF_DIR="${KAFKA_HOME_DIR}/config"
DATA_DIR="${KAFKA_HOME_DIR}/data"
LOG_DIR="${KAFKA_HOME_DIR}/logs"
PID_FILE="${KAFKA_HOME_DIR}/kafka.pid"
CLUSTER_ID_FILE="${KAFKA_HOME_DIR}/cluster.id"
LOCK_FILE="${KAFKA_HOME_DIR}/.lock"
SERVER_PROPS="${CONF_DIR}/server.properties"
LOG4J_PROPS="${CONF_DIR}/log4j.properties"
TOOLS_LOG4J_PROPS="${CONF_DIR}/tools-log4j.properties"
CLIENT_PROPS="${CONF_DIR}/client.properties"
SERVER_LOG="${LOG_DIR}/server.log"
STDOUT_LOG="${LOG_DIR}/kafka.out"

MAIN_CLASS=kafka.Kafka
STORAGE_TOOL=kafka.tools.StorageTool
TOPIC_TOOL=org.apache.kafka.tools.TopicCommand

log() { printf 'kafka.sh: %s\n' "$*"; }
err() { printf 'kafka.sh: error: %s\n' "$*" >&2; }
die() { err "$*"; exit 1; }

# --- prerequisites ------------------------------------------------------------------------

JAVA=""
find_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "${JAVA_HOME}/bin/java" ]]; then
        JAVA="${JAVA_HOME}/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA="$(command -v java)"
    else
        err "java not found (need Java 17 or newer; set JAVA_HOME or put java on PATH)."
        err "  Debian/Ubuntu: apt-get install openjdk-17-jre-headless maven"
        exit 1
    fi
    local line major
    line="$("${JAVA}" -version 2>&1 | head -n 1)"
    major="$(sed -nE 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/p' <<<"${line}")"
    if [[ -z "${major}" ]]; then
        die "cannot read the Java version from: ${line}"
    fi
    # "1.8.0_x" -> 8, "17.0.15" -> 17
    local first second
    read -r first second <<<"${major}"
    if [[ "${first}" == 1 ]]; then major="${second:-0}"; else major="${first}"; fi
    if (( major < 17 )); then
        err "${JAVA} is Java ${major}; Kafka 3.9 needs Java 17 or newer."
        err "  Debian/Ubuntu: apt-get install openjdk-17-jre-headless  (then set JAVA_HOME)"
        exit 1
    fi
}

check_mvn() {
    if ! command -v "${MVN}" >/dev/null 2>&1; then
        err "mvn (Apache Maven) not found; it is needed once to fetch the Kafka jars into ${LIBS_DIR}."
        err "  Debian/Ubuntu: apt-get install openjdk-17-jre-headless maven"
        exit 1
    fi
}

pom_hash() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "${POM}" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "${POM}" | cut -d' ' -f1
    else cksum "${POM}" | cut -d' ' -f1,2
    fi
}

file_size() { wc -c <"$1" | tr -d '[:space:]'; }

libs_ready() {
    [[ -f "${LIBS_MARKER}" ]] && [[ "$(cat "${LIBS_MARKER}")" == "$(pom_hash)" ]]
}

resolve_libs() {
    if libs_ready; then
        return 0
    fi
    check_mvn
    log "resolving the Kafka jars from Maven Central into ${LIBS_DIR} (first run only)..."
    local tmp="${LIBS_DIR}.tmp.$$" start=${SECONDS}
    rm -rf "${tmp}"
    mkdir -p "${tmp}"
    if ! "${MVN}" -q -B -f "${POM}" dependency:copy-dependencies \
            -DoutputDirectory="${tmp}" -DincludeScope=runtime >"${tmp}.mvn.log" 2>&1; then
        err "Maven could not resolve the jars (network, proxy or ~/.m2/settings.xml mirror?):"
        tail -n 30 "${tmp}.mvn.log" >&2 || true
        rm -rf "${tmp}" "${tmp}.mvn.log"
        exit 1
    fi
    rm -f "${tmp}.mvn.log"
    if ! compgen -G "${tmp}/kafka_2.13-*.jar" >/dev/null; then
        rm -rf "${tmp}"
        die "Maven finished but no kafka_2.13 jar was copied; check ${POM}"
    fi
    pom_hash >"${tmp}/.resolved"
    rm -rf "${LIBS_DIR}"
    mv "${tmp}" "${LIBS_DIR}"
    log "resolved $(find "${LIBS_DIR}" -name '*.jar' | wc -l) jars in $((SECONDS - start)) s"
}

# run a Kafka tool class with the broker's jars and quiet logging
kafka_tool() {
    local cls="$1"; shift
    "${JAVA}" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
        -Dlog4j.configuration="file:${TOOLS_LOG4J_PROPS}" \
        -cp "${LIBS_DIR}/*" "${cls}" "$@"
}

# --- configuration ------------------------------------------------------------------------

write_config() {
    mkdir -p "${CONF_DIR}" "${DATA_DIR}" "${LOG_DIR}"
    local tmp="${SERVER_PROPS}.tmp"
    cat >"${tmp}" <<EOF
# Written by deploy/kafka.sh on every 'up'; edit the script, not this file.
# Single-node KRaft: this process is both the broker and the (only) controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${KAFKA_CONTROLLER_PORT}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://${HOST}:${KAFKA_PORT},CONTROLLER://${HOST}:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${HOST}:${KAFKA_PORT}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=${DATA_DIR}
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
delete.topic.enable=true

# internal topics on one node
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0

# a small machine (2 cores)
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
# No time-based retention: replay files are loaded with their event times as record
# timestamps (months old), which a 7-day retention deletes at its next check, seconds after
# the load. Disk is bounded by size instead (per partition). On a shared cluster with time
# retention, load historical files with: policyloop produce --wall-clock
log.retention.ms=-1
log.retention.bytes=1073741824
log.retention.check.interval.ms=300000
EOF
    mv "${tmp}" "${SERVER_PROPS}"

    cat >"${LOG4J_PROPS}" <<'EOF'
# Written by deploy/kafka.sh. Broker logs go to ${kafka.logs.dir} (.kafka/logs), not the terminal.
log4j.rootLogger=INFO, kafkaAppender

log4j.appender.kafkaAppender=org.apache.log4j.RollingFileAppender
log4j.appender.kafkaAppender.File=${kafka.logs.dir}/server.log
log4j.appender.kafkaAppender.MaxFileSize=50MB
log4j.appender.kafkaAppender.MaxBackupIndex=3
log4j.appender.kafkaAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.kafkaAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.stateChangeAppender=org.apache.log4j.RollingFileAppender
log4j.appender.stateChangeAppender.File=${kafka.logs.dir}/state-change.log
log4j.appender.stateChangeAppender.MaxFileSize=20MB
log4j.appender.stateChangeAppender.MaxBackupIndex=2
log4j.appender.stateChangeAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.stateChangeAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.requestAppender=org.apache.log4j.RollingFileAppender
log4j.appender.requestAppender.File=${kafka.logs.dir}/kafka-request.log
log4j.appender.requestAppender.MaxFileSize=20MB
log4j.appender.requestAppender.MaxBackupIndex=2
log4j.appender.requestAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.requestAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.controllerAppender=org.apache.log4j.RollingFileAppender
log4j.appender.controllerAppender.File=${kafka.logs.dir}/controller.log
log4j.appender.controllerAppender.MaxFileSize=20MB
log4j.appender.controllerAppender.MaxBackupIndex=2
log4j.appender.controllerAppender.layout=org.apache.log4j.PatternLayout
log4j.appender.controllerAppender.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka=INFO
log4j.logger.kafka.request.logger=WARN, requestAppender
log4j.additivity.kafka.request.logger=false
log4j.logger.kafka.network.RequestChannel$=WARN, requestAppender
log4j.additivity.kafka.network.RequestChannel$=false
log4j.logger.org.apache.kafka.controller=INFO, controllerAppender
log4j.additivity.org.apache.kafka.controller=false
log4j.logger.kafka.controller=INFO, controllerAppender
log4j.additivity.kafka.controller=false
log4j.logger.state.change.logger=INFO, stateChangeAppender
log4j.additivity.state.change.logger=false
EOF

    cat >"${TOOLS_LOG4J_PROPS}" <<'EOF'
# Written by deploy/kafka.sh. Command-line tools: warnings and errors only, on stderr.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr.Target=System.err
EOF

    cat >"${CLIENT_PROPS}" <<'EOF'
# Written by deploy/kafka.sh. Admin-client settings for the readiness probe and `kafka.sh topics`:
# fail fast instead of retrying for a minute when the broker is not up yet.
request.timeout.ms=5000
default.api.timeout.ms=8000
socket.connection.setup.timeout.ms=2000
socket.connection.setup.timeout.max.ms=2000
reconnect.backoff.max.ms=500
EOF
}

format_storage() {
    if [[ -f "${DATA_DIR}/meta.properties" ]]; then
        return 0
    fi
    if [[ ! -s "${CLUSTER_ID_FILE}" ]]; then
        local id
        id="$(kafka_tool "${STORAGE_TOOL}" random-uuid | tail -n 1 | tr -d '[:space:]')"
        [[ -n "${id}" ]] || die "kafka.tools.StorageTool random-uuid returned nothing"
        printf '%s\n' "${id}" >"${CLUSTER_ID_FILE}"
    fi
    local cluster_id
    cluster_id="$(tr -d '[:space:]' <"${CLUSTER_ID_FILE}")"
    log "formatting ${DATA_DIR} (cluster id ${cluster_id})"
    if ! kafka_tool "${STORAGE_TOOL}" format -t "${cluster_id}" -c "${SERVER_PROPS}" \
            --ignore-formatted >"${LOG_DIR}/format.log" 2>&1; then
        cat "${LOG_DIR}/format.log" >&2
        die "formatting the storage failed"
    fi
}

# --- process handling ---------------------------------------------------------------------

# Is $1 a live broker process started with our server.properties? (guards against pid reuse)
is_our_broker() {
    local pid="$1" args
    [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
    kill -0 "${pid}" 2>/dev/null || return 1
    args="$(ps -ww -o args= -p "${pid}" 2>/dev/null || true)"
    [[ "${args}" == *"${MAIN_CLASS} ${SERVER_PROPS}"* ]]
}

# Print the pid of our broker, from the pid file or, when that is missing or stale, by looking
# for a java process started with exactly our server.properties. Prints nothing when none runs.
broker_pid() {
    local pid=""
    if [[ -f "${PID_FILE}" ]]; then
        pid="$(tr -d '[:space:]' <"${PID_FILE}" || true)"
        if is_our_broker "${pid}"; then
            printf '%s\n' "${pid}"
            return 0
        fi
    fi
    local p comm args
    while read -r p comm args; do
        if [[ "${comm}" == java && "${args}" == *"${MAIN_CLASS} ${SERVER_PROPS}"* ]]; then
            printf '%s\n' "${p}" >"${PID_FILE}"
            printf '%s\n' "${p}"
            return 0
        fi
    done < <(ps -ww -eo pid=,comm=,args= 2>/dev/null || true)
    rm -f "${PID_FILE}"
}

port_open() {
    (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null
}

# A real client round trip: list topics through the admin API (a metadata request).
probe() {
    local t=()
    command -v timeout >/dev/null 2>&1 && t=(timeout 30)
    "${t[@]}" "${JAVA}" -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
        -Dlog4j.configuration="file:${TOOLS_LOG4J_PROPS}" -cp "${LIBS_DIR}/*" "${TOPIC_TOOL}" \
        --bootstrap-server "${BOOTSTRAP}" --command-config "${CLIENT_PROPS}" --list >/dev/null 2>&1
}

# Show what this start wrote: the JVM's own output and server.log from byte offset $1 on.
show_log_tail() {
    local from="${1:-0}"
    if [[ -s "${STDOUT_LOG}" ]]; then
        err "---- ${STDOUT_LOG} ----"
        tail -n 40 "${STDOUT_LOG}" >&2 || true
    fi
    if [[ -f "${SERVER_LOG}" ]] && (( $(file_size "${SERVER_LOG}") > from )); then
        err "---- last lines of ${SERVER_LOG} ----"
        tail -c "+$((from + 1))" "${SERVER_LOG}" | tail -n 40 >&2 || true
    else
        err "(nothing new in ${SERVER_LOG})"
    fi
}

# The broker logs "Kafka Server started" once it is unfenced and serving; probing (a JVM per
# try, on 2 cores) before that only slows the startup down, so until that line shows up (after
# byte offset $2 of server.log) probe at most every 5 s, then confirm with a real request.
server_started() {
    local from="$1"
    [[ -f "${SERVER_LOG}" ]] || return 1
    tail -c "+$((from + 1))" "${SERVER_LOG}" 2>/dev/null | grep -q 'Kafka Server started'
}

wait_ready() {
    local pid="$1" from="${2:-0}" deadline=$((SECONDS + KAFKA_START_TIMEOUT)) last_probe=-100
    while (( SECONDS < deadline )); do
        if ! is_our_broker "${pid}"; then
            err "the broker (pid ${pid}) exited during startup"
            show_log_tail "${from}"
            rm -f "${PID_FILE}"
            return 1
        fi
        if port_open "${KAFKA_PORT}"; then
            if server_started "${from}" || (( SECONDS - last_probe >= 5 )); then
                last_probe=${SECONDS}
                probe && return 0
            fi
        fi
        sleep 0.2
    done
    err "the broker (pid ${pid}) did not answer on ${BOOTSTRAP} within ${KAFKA_START_TIMEOUT} s"
    show_log_tail "${from}"
    return 1
}

stop_broker() {
    local pid
    pid="$(broker_pid)"
    if [[ -z "${pid}" ]]; then
        log "not running"
        return 0
    fi
    log "stopping the broker (pid ${pid})"
    kill -TERM "${pid}" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while kill -0 "${pid}" 2>/dev/null && (( SECONDS < deadline )); do
        sleep 0.2
    done
    if kill -0 "${pid}" 2>/dev/null; then
        log "still running after ${KAFKA_STOP_TIMEOUT} s, sending SIGKILL"
        kill -KILL "${pid}" 2>/dev/null || true
        while kill -0 "${pid}" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "${PID_FILE}"
    log "stopped"
}

start_broker() {
    find_java
    resolve_libs          # also needed to probe an already running broker
    local pid
    pid="$(broker_pid)"
    if [[ -n "${pid}" ]]; then
        [[ -f "${CLIENT_PROPS}" ]] || write_config
        if port_open "${KAFKA_PORT}" && probe; then
            log "already running (pid ${pid}) and answering on ${BOOTSTRAP}"
            return 0
        fi
        log "a broker (pid ${pid}) is running but not answering yet; waiting"
        wait_ready "${pid}" || exit 1
        log "ready on ${BOOTSTRAP} (pid ${pid})"
        return 0
    fi

    write_config
    if port_open "${KAFKA_PORT}"; then
        die "${BOOTSTRAP} is already in use by another process (not our broker); stop it or set KAFKA_PORT"
    fi
    if port_open "${KAFKA_CONTROLLER_PORT}"; then
        die "${HOST}:${KAFKA_CONTROLLER_PORT} is already in use; stop that process or set KAFKA_CONTROLLER_PORT"
    fi
    format_storage

    local start=${SECONDS}
    log "starting the broker on ${BOOTSTRAP} (controller ${HOST}:${KAFKA_CONTROLLER_PORT}), logs in ${LOG_DIR}"
    : >"${STDOUT_LOG}"
    rm -f "${PID_FILE}"
    local log_offset=0
    [[ -f "${SERVER_LOG}" ]] && log_offset="$(file_size "${SERVER_LOG}")"
    local launcher=()
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    # The inner shell writes its own pid and then execs java, so the pid file names the JVM
    # even if setsid has to fork. nohup + setsid: the broker survives the caller's terminal.
    # 9>&-: the broker must not inherit (and so hold forever) the lock taken in with_lock.
    # shellcheck disable=SC2086,SC2016
    "${launcher[@]}" bash -c 'echo $$ >"$0"; exec nohup "$@"' "${PID_FILE}" \
        "${JAVA}" ${KAFKA_HEAP_OPTS} \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dkafka.logs.dir="${LOG_DIR}" -Dlog4j.configuration="file:${LOG4J_PROPS}" \
        ${KAFKA_JVM_OPTS} \
        -cp "${LIBS_DIR}/*" "${MAIN_CLASS}" "${SERVER_PROPS}" \
        >>"${STDOUT_LOG}" 2>&1 </dev/null 9>&- &
    local _
    for _ in $(seq 1 50); do
        [[ -s "${PID_FILE}" ]] && break
        sleep 0.1
    done
    pid="$(tr -d '[:space:]' <"${PID_FILE}" 2>/dev/null || true)"
    [[ -n "${pid}" ]] || die "could not start java (no pid written)"
    if ! wait_ready "${pid}" "${log_offset}"; then
        if is_our_broker "${pid}"; then
            err "stopping the broker that did not become ready"
            stop_broker >&2
        fi
        exit 1
    fi
    log "ready on ${BOOTSTRAP} (pid ${pid}) after $((SECONDS - start)) s"
}

status() {
    local pid
    pid="$(broker_pid)"
    if [[ -z "${pid}" ]]; then
        echo "not running"
        return 3
    fi
    find_java
    if port_open "${KAFKA_PORT}" && probe; then
        echo "running (pid ${pid}) and answering on ${BOOTSTRAP}"
        return 0
    fi
    echo "running (pid ${pid}) but not answering on ${BOOTSTRAP}"
    return 1
}

# --- main ---------------------------------------------------------------------------------

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
}

with_lock() {
    mkdir -p "${KAFKA_HOME_DIR}"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"${LOCK_FILE}"
        flock -w 300 9 || die "another kafka.sh has held ${LOCK_FILE} for 300 s"
    fi
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "${cmd}" in
    up|start)
        with_lock
        start_broker
        ;;
    down|stop)
        with_lock
        stop_broker
        ;;
    restart)
        with_lock
        stop_broker
        start_broker
        ;;
    reset)
        with_lock
        stop_broker
        rm -rf "${DATA_DIR}"
        log "deleted ${DATA_DIR} (jars kept in ${LIBS_DIR})"
        ;;
    status)
        status
        ;;
    topics)
        find_java
        libs_ready || die "jars not resolved yet; run: $0 up"
        [[ -f "${CLIENT_PROPS}" ]] || write_config
        kafka_tool "${TOPIC_TOOL}" --bootstrap-server "${BOOTSTRAP}" \
            --command-config "${CLIENT_PROPS}" "$@"
        ;;
    logs)
        exec tail -n "${1:-100}" "${SERVER_LOG}"
        ;;
    ""|-h|--help|help)
        usage
        ;;
    *)
        err "unknown command: ${cmd}"
        usage >&2
        exit 2
        ;;
esac
