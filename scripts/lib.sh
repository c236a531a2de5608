# Shared by scripts/install_*.sh, scripts/kafka.sh and scripts/minio.sh (sourced, not run).
# Everything is relative to the repository root; the callers cd there first.
# shellcheck shell=bash

RUNLAKE_DIR=$PWD/.runlake

log() { echo "$LOG_PREFIX: $*" >&2; }
die() {
  echo "$LOG_PREFIX: error: $*" >&2
  exit 1
}

# install_lock NAME: hold .runlake/.NAME.lock (fd 8) until this script exits, so two
# installs of the same thing (parallel test runs) wait for each other instead of racing.
install_lock() {
  mkdir -p "$RUNLAKE_DIR"
  exec 8>"$RUNLAKE_DIR/.$1.lock"
  flock -w 1800 8 || die "another install holds .runlake/.$1.lock"
}

# resolve_jars POM GROUP: `mvn dependency:copy-dependencies` of POM into .runlake/jars/GROUP.
# Maven's own repository is .runlake/m2, so every download stays under the ignored .runlake/.
# A stamp (the pom's sha256) makes a second run a no-op; a changed pom resolves again.
resolve_jars() {
  local pom=$1 group=$2
  local dest=$RUNLAKE_DIR/jars/$group
  local stamp=$dest/.pom-sha256 want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  install_lock "jars-$group"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "needs Maven (mvn) on PATH"
  command -v java >/dev/null 2>&1 || die "needs a Java 17+ runtime (java) on PATH"
  log "resolving $pom into .runlake/jars/$group (Maven repository .runlake/m2)"
  local t0=$SECONDS tmp=$dest.tmp.$$
  rm -rf "$tmp"
  # Maven prints to stdout; keep stdout clean for callers and send it to stderr.
  if ! mvn -B -q -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$RUNLAKE_DIR/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" 1>&2; then
    rm -rf "$tmp"
    die "Maven could not resolve $pom"
  fi
  # The copies are the same bytes as Maven's repository files: hard-link them, store once.
  local jar src
  while IFS= read -r -d '' jar; do
    src=$(find "$RUNLAKE_DIR/m2" -type f -name "$(basename "$jar")" -print -quit)
    if [ -n "$src" ] && cmp -s "$src" "$jar"; then
      ln -f "$src" "$jar"
    fi
  done < <(find "$tmp" -name '*.jar' -print0)
  echo "$want" >"$tmp/.pom-sha256"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "$(find "$dest" -name '*.jar' | wc -l) jars ($(du -sh "$dest" | cut -f1)) in .runlake/jars/$group, $((SECONDS - t0))s"
}

# lock_data_dir DIR: hold DIR/.lock (fd 9) until this script exits, so two starts or a
# start and a stop on one data dir do not interleave. Children started in the background
# must close fd 9 (9>&-) or they would hold the lock for their whole life.
lock_data_dir() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock -w 600 9 || die "another scripts/ command holds $1/.lock"
}

# pid_alive PID: the process exists (and is not a zombie).
pid_alive() {
  local pid=$1 state
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo "?")
  [ "$state" != "Z" ]
}

# owned_pid PIDFILE MARKER: print the recorded PID if that process is alive and its command
# line contains MARKER (the data dir), so a PID reused by an unrelated process is never ours.
owned_pid() {
  local pidfile=$1 marker=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
  echo "$pid"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stop_pid PIDFILE MARKER NAME TIMEOUT_S: SIGTERM the recorded PID, SIGKILL it past the bound.
# Only that PID is signalled, and only when it is still the process we started.
stop_pid() {
  local pidfile=$1 marker=$2 name=$3 timeout_s=$4 pid
  if ! pid=$(owned_pid "$pidfile" "$marker"); then
    rm -f "$pidfile"
    log "$name is not running"
    return 0
  fi
  log "stopping $name (pid $pid): SIGTERM, SIGKILL after ${timeout_s}s"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout_s))
  while pid_alive "$pid"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$name (pid $pid) still running after ${timeout_s}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  rm -f "$pidfile"
  log "$name stopped"
}

# fail_start NAME PIDFILE MARKER MESSAGE LOGFILE...: stop what we started, show each log's
# tail, exit 1.
fail_start() {
  local name=$1 pidfile=$2 marker=$3 msg=$4
  shift 4
  echo "$LOG_PREFIX: error: $msg" >&2
  local f
  for f in "$@"; do
    if [ -s "$f" ]; then
      echo "---- last lines of $f ----" >&2
      tail -n 40 "$f" >&2 || true
    fi
  done
  stop_pid "$pidfile" "$marker" "$name" 5 >/dev/null 2>&1 || true
  exit 1
}

# env_value FILE KEY: the value of KEY=VALUE in FILE (read, never sourced), or nothing.
env_value() {
  [ -f "$1" ] || return 0
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

# abs_path PATH: PATH made absolute (it need not exist yet).
abs_path() {
  case $1 in
    /*) echo "$1" ;;
    *) echo "$PWD/$1" ;;
  esac
}
