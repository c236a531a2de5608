#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft: broker and controller in one JVM) on 127.0.0.1,
# run from the jars that scripts/install_kafka.sh resolves into .runlake/jars/kafka.
#
#   scripts/kafka.sh start  [options]   install if needed, format the storage once, start,
#                                       wait until healthy, create the topics
#   scripts/kafka.sh topics [options]   create topics on the running broker (idempotent)
#   scripts/kafka.sh status [options]   "running pid=N bootstrap=127.0.0.1:PORT" (exit 0),
#                                       "stopped" (exit 3), or "unhealthy ..." (exit 1)
#   scripts/kafka.sh stop   [options]   SIGTERM the recorded PID, SIGKILL after a bound
#
# Options (environment variables in brackets; flags win):
#   --data-dir DIR          [RUNLAKE_KAFKA_DATA_DIR]       default .runlake/kafka
#   --port N                [RUNLAKE_KAFKA_PORT]           client listener, default 9092
#   --controller-port N     [RUNLAKE_KAFKA_CONTROLLER_PORT] KRaft controller, default 9093
#   --topics A,B            [RUNLAKE_KAFKA_TOPICS]         default runlake.events,runlake.registry
#   --partitions N          [RUNLAKE_KAFKA_PARTITIONS]     for new topics, default 4
#   --heap SIZE             [RUNLAKE_KAFKA_HEAP]           broker -Xmx, default 512m
#   --timeout S             [RUNLAKE_KAFKA_START_TIMEOUT]  health wait, default 120
#   --stop-timeout S        [RUNLAKE_KAFKA_STOP_TIMEOUT]   SIGTERM grace, default 30
#
# The data dir holds server.properties, the metadata and topic logs (kraft-logs/), the
# broker's log (logs/server.log, rolled), its stdout/stderr (kafka.out), kafka.pid and
# kafka.env (the ports it was started with, read back by status, topics and stop).
set -euo pipefail

# The header comment above is the help text.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; }

cmd=${1:-}
[ $# -gt 0 ] && shift
data_dir=${RUNLAKE_KAFKA_DATA_DIR:-}
port=${RUNLAKE_KAFKA_PORT:-}
controller_port=${RUNLAKE_KAFKA_CONTROLLER_PORT:-}
topics=${RUNLAKE_KAFKA_TOPICS:-runlake.events,runlake.registry}
partitions=${RUNLAKE_KAFKA_PARTITIONS:-4}
heap=${RUNLAKE_KAFKA_HEAP:-512m}
start_timeout=${RUNLAKE_KAFKA_START_TIMEOUT:-120}
stop_timeout=${RUNLAKE_KAFKA_STOP_TIMEOUT:-30}
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) data_dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --controller-port) controller_port=$2; shift 2 ;;
    --topics) topics=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --heap) heap=$2; shift 2 ;;
    --timeout) start_timeout=$2; shift 2 ;;
    --stop-timeout) stop_timeout=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "kafka.sh: unknown option $1" >&2; usage; exit 2 ;;
  esac
done

# A relative --data-dir is relative to the caller's directory; the default to the repo's.
[ -n "$data_dir" ] && case $data_dir in /*) ;; *) data_dir=$PWD/$data_dir ;; esac
cd "$(dirname "$0")/.."
LOG_PREFIX=kafka.sh
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
data_dir=${data_dir:-$RUNLAKE_DIR/kafka}

props=$data_dir/server.properties
pidfile=$data_dir/kafka.pid
envfile=$data_dir/kafka.env
outfile=$data_dir/kafka.out
logfile=$data_dir/logs/server.log
jars=$RUNLAKE_DIR/jars/kafka

# Ports: flags/env first, else what this data dir was last started with, else the defaults.
saved_port=$(env_value "$envfile" KAFKA_PORT)
saved_controller_port=$(env_value "$envfile" KAFKA_CONTROLLER_PORT)
port=${port:-${saved_port:-9092}}
controller_port=${controller_port:-${saved_controller_port:-9093}}
bootstrap=127.0.0.1:$port

# A short-lived JVM for the command-line tools: small heap, quick start, warnings only.
run_tool() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:$data_dir/tools-log4j2.properties" \
    -cp "$jars/*" "$@"
}

write_configs() {
  mkdir -p "$data_dir/kraft-logs" "$data_dir/logs"
  cat >"$props" <<EOF
# Written by scripts/kafka.sh at each start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$data_dir/kraft-logs
# Topics are created explicitly (kafka.sh topics), never by a typo in a producer.
auto.create.topics.enable=false
num.partitions=$partitions
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# A small machine: few threads.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
log.retention.hours=168
# A gateway batch may be up to 16 MiB (docs/decisions/0012): let 20 MiB messages through.
message.max.bytes=20971520
replica.fetch.max.bytes=20971520
EOF
  cat >"$data_dir/log4j2.properties" <<EOF
# Written by scripts/kafka.sh: the broker logs to logs/server.log, rolled at 20 MB, 5 kept.
appender.file.type=RollingFile
appender.file.name=file
appender.file.fileName=$logfile
appender.file.filePattern=$data_dir/logs/server.log.%i
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
appender.file.policies.type=Policies
appender.file.policies.size.type=SizeBasedTriggeringPolicy
appender.file.policies.size.size=20MB
appender.file.strategy.type=DefaultRolloverStrategy
appender.file.strategy.max=5
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
logger.request.name=kafka.request.logger
logger.request.level=WARN
logger.statechange.name=state.change.logger
logger.statechange.level=WARN
logger.clients.name=org.apache.kafka.clients
logger.clients.level=WARN
EOF
  cat >"$data_dir/tools-log4j2.properties" <<EOF
# Written by scripts/kafka.sh: command-line tools print warnings and errors to stderr.
appender.stderr.type=Console
appender.stderr.name=stderr
appender.stderr.target=SYSTEM_ERR
appender.stderr.layout.type=PatternLayout
appender.stderr.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.stderr.ref=stderr
EOF
}

create_topics() {
  local t
  IFS=, read -r -a names <<<"$topics"
  for t in "${names[@]}"; do
    [ -n "$t" ] || continue
    if ! run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
      --create --if-not-exists --topic "$t" --partitions "$partitions" \
      --replication-factor 1 --config max.message.bytes=20971520 >&2; then
      return 1
    fi
    log "topic $t ready (new topics get $partitions partitions)"
  done
}

status() {
  local pid
  if ! pid=$(owned_pid "$pidfile" "$props"); then
    echo "stopped"
    return 3
  fi
  if port_open "$port"; then
    echo "running pid=$pid bootstrap=$bootstrap"
    return 0
  fi
  echo "unhealthy pid=$pid bootstrap=$bootstrap (not accepting connections)"
  return 1
}

start() {
  local pid
  lock_data_dir "$data_dir"
  if pid=$(owned_pid "$pidfile" "$props"); then
    if [ "$port" != "$saved_port" ] || [ "$controller_port" != "$saved_controller_port" ]; then
      die "already running from $data_dir on ports ${saved_port:-?}/${saved_controller_port:-?} (pid $pid); stop it to change ports"
    fi
    log "already running (pid $pid, bootstrap $bootstrap)"
    create_topics || die "could not create topics on $bootstrap"
    echo "running pid=$pid bootstrap=$bootstrap"
    return 0
  fi
  for p in "$port" "$controller_port"; do
    if port_open "$p"; then
      die "127.0.0.1:$p is already in use by another process (choose --port/--controller-port)"
    fi
  done
  scripts/install_kafka.sh
  write_configs
  printf 'KAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\n' "$port" "$controller_port" >"$envfile"

  if [ ! -f "$data_dir/kraft-logs/meta.properties" ]; then
    local cluster_id
    cluster_id=$(run_tool kafka.tools.StorageTool random-uuid)
    log "formatting $data_dir/kraft-logs (cluster id $cluster_id)"
    run_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$props" >&2 ||
      die "formatting the KRaft storage failed"
  fi

  log "starting Kafka $(basename "$jars"/kafka_2.13-*.jar .jar | sed 's/kafka_2.13-//') on $bootstrap (controller :$controller_port, heap $heap, data $data_dir)"
  local t0=$SECONDS
  # setsid + nohup: the broker outlives this script and the terminal; stdin closed.
  setsid nohup java -Xms128m -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dkafka.logs.dir="$data_dir/logs" \
    -Dlog4j2.configurationFile="file:$data_dir/log4j2.properties" \
    -cp "$jars/*" kafka.Kafka "$props" </dev/null >>"$outfile" 2>&1 9>&- &
  echo $! >"$pidfile"
  pid=$!

  local deadline=$((SECONDS + start_timeout))
  until port_open "$port"; do
    pid_alive "$pid" || fail_start kafka "$pidfile" "$props" \
      "Kafka exited during start-up" "$outfile" "$logfile"
    [ "$SECONDS" -lt "$deadline" ] || fail_start kafka "$pidfile" "$props" \
      "Kafka did not accept connections on $bootstrap within ${start_timeout}s" "$outfile" "$logfile"
    sleep 0.2
  done
  create_topics || fail_start kafka "$pidfile" "$props" \
    "Kafka is up but topics could not be created" "$outfile" "$logfile"
  log "Kafka healthy on $bootstrap (pid $pid) in $((SECONDS - t0))s"
  echo "running pid=$pid bootstrap=$bootstrap"
}

case $cmd in
  start) start ;;
  stop)
    lock_data_dir "$data_dir"
    stop_pid "$pidfile" "$props" kafka "$stop_timeout"
    ;;
  status) status ;;
  topics)
    status >/dev/null || die "Kafka is not running on $bootstrap (data dir $data_dir)"
    create_topics
    ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
