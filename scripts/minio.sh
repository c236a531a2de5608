#!/usr/bin/env bash
# A single-drive MinIO server (S3 API) on 127.0.0.1, built by scripts/install_minio.sh.
#
#   scripts/minio.sh start  [options]   install if needed, start, wait until healthy,
#                                       create the bucket
#   scripts/minio.sh status [options]   "running pid=N endpoint=http://127.0.0.1:PORT"
#                                       (exit 0), "stopped" (exit 3), "unhealthy ..." (exit 1)
#   scripts/minio.sh stop   [options]   SIGTERM the recorded PID, SIGKILL after a bound
#
# Options (environment variables in brackets; flags win):
#   --data-dir DIR      [RUNLAKE_MINIO_DATA_DIR]      default .runlake/minio
#   --port N            [RUNLAKE_MINIO_PORT]          S3 API, default 9000
#   --bucket NAME       [RUNLAKE_S3_BUCKET]           created at start, default runlake
#   --timeout S         [RUNLAKE_MINIO_START_TIMEOUT] health wait, default 60
#   --stop-timeout S    [RUNLAKE_MINIO_STOP_TIMEOUT]  SIGTERM grace, default 20
#
# Credentials: RUNLAKE_S3_ACCESS_KEY / RUNLAKE_S3_SECRET_KEY from the environment. When
# they are unset, dev-only random ones are generated once into DIR/credentials.env
# (mode 600) and reused; nothing secret is written when they are given.
# The data dir holds the drive (data/), minio.log, minio.pid and minio.env (the port).
# The web console is off; only the S3 API listens.
set -euo pipefail

# The header comment above is the help text.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; }

cmd=${1:-}
[ $# -gt 0 ] && shift
data_dir=${RUNLAKE_MINIO_DATA_DIR:-}
port=${RUNLAKE_MINIO_PORT:-}
bucket=${RUNLAKE_S3_BUCKET:-runlake}
start_timeout=${RUNLAKE_MINIO_START_TIMEOUT:-60}
stop_timeout=${RUNLAKE_MINIO_STOP_TIMEOUT:-20}
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) data_dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --bucket) bucket=$2; shift 2 ;;
    --timeout) start_timeout=$2; shift 2 ;;
    --stop-timeout) stop_timeout=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "minio.sh: unknown option $1" >&2; usage; exit 2 ;;
  esac
done

# A relative --data-dir is relative to the caller's directory; the default to the repo's.
[ -n "$data_dir" ] && case $data_dir in /*) ;; *) data_dir=$PWD/$data_dir ;; esac
cd "$(dirname "$0")/.."
LOG_PREFIX=minio.sh
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
data_dir=${data_dir:-$RUNLAKE_DIR/minio}

drive=$data_dir/data
pidfile=$data_dir/minio.pid
envfile=$data_dir/minio.env
logfile=$data_dir/minio.log
credfile=$data_dir/credentials.env
binary=$RUNLAKE_DIR/bin/minio

saved_port=$(env_value "$envfile" MINIO_PORT)
port=${port:-${saved_port:-9000}}
endpoint=http://127.0.0.1:$port

# Sets access_key/secret_key from the environment, else from (or into) $credfile.
load_credentials() {
  access_key=${RUNLAKE_S3_ACCESS_KEY:-}
  secret_key=${RUNLAKE_S3_SECRET_KEY:-}
  if [ -n "$access_key" ] && [ -n "$secret_key" ]; then
    return 0
  fi
  [ -z "$access_key$secret_key" ] ||
    die "set both RUNLAKE_S3_ACCESS_KEY and RUNLAKE_S3_SECRET_KEY, or neither"
  if [ ! -f "$credfile" ]; then
    mkdir -p "$data_dir"
    log "no RUNLAKE_S3_ACCESS_KEY/RUNLAKE_S3_SECRET_KEY: generating dev-only credentials into $credfile"
    (
      umask 077
      printf 'RUNLAKE_S3_ACCESS_KEY=dev-%s\nRUNLAKE_S3_SECRET_KEY=%s\n' \
        "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$credfile"
    )
  fi
  access_key=$(env_value "$credfile" RUNLAKE_S3_ACCESS_KEY)
  secret_key=$(env_value "$credfile" RUNLAKE_S3_SECRET_KEY)
  if [ -z "$access_key" ] || [ -z "$secret_key" ]; then
    die "$credfile lacks the two keys; delete it to regenerate"
  fi
}

# http_status METHOD PATH [signed]: the HTTP status code of one request to the S3 API.
http_status() {
  local method=$1 path=$2 signed=${3:-}
  local args=(-s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method")
  if [ -n "$signed" ]; then
    # SigV4 signing by curl itself; the secret goes through a config on stdin, not argv.
    args+=(--aws-sigv4 "aws:amz:us-east-1:s3" -K -)
    printf 'user = "%s:%s"\n' "$access_key" "$secret_key" |
      curl "${args[@]}" "$endpoint$path" 2>/dev/null || echo 000
  else
    curl "${args[@]}" "$endpoint$path" 2>/dev/null || echo 000
  fi
}

ensure_bucket() {
  local code
  code=$(http_status HEAD "/$bucket" signed)
  case $code in
    200) log "bucket $bucket exists" ;;
    404)
      code=$(http_status PUT "/$bucket" signed)
      [ "$code" = 200 ] || return 1
      log "bucket $bucket created"
      ;;
    *) return 1 ;;
  esac
}

status() {
  local pid
  if ! pid=$(owned_pid "$pidfile" "$drive"); then
    echo "stopped"
    return 3
  fi
  if [ "$(http_status GET /minio/health/live)" = 200 ]; then
    echo "running pid=$pid endpoint=$endpoint"
    return 0
  fi
  echo "unhealthy pid=$pid endpoint=$endpoint (health check failed)"
  return 1
}

start() {
  local pid
  command -v curl >/dev/null 2>&1 || die "needs curl on PATH"
  lock_data_dir "$data_dir"
  load_credentials
  if pid=$(owned_pid "$pidfile" "$drive"); then
    if [ "$port" != "$saved_port" ]; then
      die "already running from $data_dir on port ${saved_port:-?} (pid $pid); stop it to change the port"
    fi
    log "already running (pid $pid, $endpoint)"
    ensure_bucket || die "could not create bucket $bucket on $endpoint"
    echo "running pid=$pid endpoint=$endpoint"
    return 0
  fi
  port_open "$port" && die "127.0.0.1:$port is already in use by another process (choose --port)"
  scripts/install_minio.sh
  mkdir -p "$drive"
  printf 'MINIO_PORT=%s\n' "$port" >"$envfile"

  log "starting MinIO on $endpoint (data $drive)"
  local t0=$SECONDS
  # setsid + nohup: the server outlives this script and the terminal; stdin closed.
  MINIO_ROOT_USER=$access_key MINIO_ROOT_PASSWORD=$secret_key \
    MINIO_BROWSER=off MINIO_UPDATE=off \
    setsid nohup "$binary" server --quiet --anonymous --address "127.0.0.1:$port" "$drive" \
    </dev/null >>"$logfile" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$pidfile"

  local deadline=$((SECONDS + start_timeout))
  until [ "$(http_status GET /minio/health/live)" = 200 ]; do
    pid_alive "$pid" || fail_start minio "$pidfile" "$drive" \
      "MinIO exited during start-up" "$logfile"
    [ "$SECONDS" -lt "$deadline" ] || fail_start minio "$pidfile" "$drive" \
      "MinIO did not answer $endpoint/minio/health/live within ${start_timeout}s" "$logfile"
    sleep 0.2
  done
  # Ready to serve S3 calls (the drive is loaded), then the bucket.
  until [ "$(http_status GET /minio/health/ready)" = 200 ] && ensure_bucket; do
    pid_alive "$pid" || fail_start minio "$pidfile" "$drive" \
      "MinIO exited during start-up" "$logfile"
    [ "$SECONDS" -lt "$deadline" ] || fail_start minio "$pidfile" "$drive" \
      "MinIO is up but bucket $bucket could not be created within ${start_timeout}s" "$logfile"
    sleep 0.2
  done
  log "MinIO healthy on $endpoint (pid $pid) in $((SECONDS - t0))s"
  echo "running pid=$pid endpoint=$endpoint"
}

case $cmd in
  start) start ;;
  stop)
    lock_data_dir "$data_dir"
    stop_pid "$pidfile" "$drive" minio "$stop_timeout"
    ;;
  status) status ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
