#!/usr/bin/env bash
# Runs a single-node Ceph cluster (one monitor, one BlueStore OSD on a sparse
# file, one RADOS Gateway) on 127.0.0.1 so that tests can use a real S3
# endpoint. It needs no systemd because every daemon runs from a state
# directory and is tracked by its pid file. Written for Ceph 16.2 (pacific) as
# packaged by Debian 12.
#
# Usage: scripts/ceph-rgw.sh install|start|stop [--purge]|status|env|help
set -euo pipefail

readonly CEPH_DIR="${CEPH_DIR:-/tmp/portcullis-ceph}"
readonly RGW_PORT="${RGW_PORT:-7480}"
readonly CEPH_MON_PORT="${CEPH_MON_PORT:-16789}"
readonly RGW_ACCESS_KEY="${RGW_ACCESS_KEY:-portcullis}"
readonly RGW_SECRET_KEY="${RGW_SECRET_KEY:-portcullis-secret}"
# Size of the sparse file behind the OSD. Only written blocks take disk space.
readonly CEPH_OSD_SIZE_GIB="${CEPH_OSD_SIZE_GIB:-16}"
# Seconds that `start` waits for each daemon.
readonly CEPH_START_TIMEOUT="${CEPH_START_TIMEOUT:-60}"

readonly PACKAGES=(radosgw ceph-mon ceph-osd ceph-common curl)
readonly CONF="$CEPH_DIR/ceph.conf"
readonly RUN_DIR="$CEPH_DIR/run"
readonly LOG_DIR="$CEPH_DIR/log"
# Created first in a new state directory. `stop --purge` deletes only a
# directory that contains it.
readonly OWNER_MARKER="$CEPH_DIR/.portcullis-ceph"
# Created once the monitor and the OSD have been created and have started.
readonly BOOTSTRAP_MARKER="$CEPH_DIR/bootstrapped"
# The cluster id and the monitor port, saved at creation. The monitor map
# contains the port, so it cannot change afterwards.
readonly FSID_FILE="$CEPH_DIR/fsid"
readonly MON_PORT_FILE="$CEPH_DIR/mon-port"
readonly RGW_USER="portcullis"
readonly ENDPOINT="http://127.0.0.1:$RGW_PORT"

# Daemon names, in start order. `stop` stops them in reverse order.
readonly DAEMONS=(mon.a osd.0 client.rgw.portcullis)

log() {
  printf 'ceph-rgw: %s\n' "$*" >&2
}

# Advice that die() prints after the error message. A command sets it where
# one remedy fits every failure that follows.
failure_hint=""

die() {
  log "error: $*"
  [[ -z "$failure_hint" ]] || log "$failure_hint"
  exit 1
}

# Prints the last lines of a daemon's log file and of its captured stderr.
print_log_tail() {
  local daemon="$1"
  local file
  for file in "$LOG_DIR/$daemon.log" "$LOG_DIR/$daemon.stderr"; do
    [[ -s "$file" ]] || continue
    printf -- '--- last lines of %s ---\n' "$file" >&2
    tail -n 30 "$file" >&2
  done
}

# Exits with an error message after printing the daemon's log tail.
die_with_log() {
  local daemon="$1"
  shift
  print_log_tail "$daemon"
  die "$*"
}

usage() {
  cat <<EOF
Usage: scripts/ceph-rgw.sh COMMAND

Runs a single-node Ceph cluster with a RADOS Gateway (S3) on 127.0.0.1.

Commands:
  install       install the Debian packages ${PACKAGES[*]} if missing
  start         start the cluster, create the S3 user and wait for the endpoint
                (if the cluster already runs, only check the S3 user)
  stop          stop the daemons that 'start' started, keeping their data
  stop --purge  stop the daemons and delete the state directory
  status        exit 0 if the S3 endpoint responds, 1 otherwise
  env           print an 'export' line for eval "\$(scripts/ceph-rgw.sh env)"

Environment:
  CEPH_DIR            state directory: data, logs, pid files (default /tmp/portcullis-ceph)
  RGW_PORT            TCP port of the S3 endpoint (default 7480)
  CEPH_MON_PORT       TCP port of the monitor, msgr2 protocol (default 16789)
  RGW_ACCESS_KEY      S3 access key of the test user (default portcullis)
  RGW_SECRET_KEY      S3 secret key of the test user (default portcullis-secret)
  CEPH_OSD_SIZE_GIB   size of the sparse OSD file in GiB, used at creation (default 16)
  CEPH_START_TIMEOUT  seconds to wait for each daemon to start (default 60)
EOF
}

# --- install ---------------------------------------------------------------

is_package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

cmd_install() {
  local missing=()
  local package
  for package in "${PACKAGES[@]}"; do
    is_package_installed "$package" || missing+=("$package")
  done

  if ((${#missing[@]} == 0)); then
    log "packages already installed: ${PACKAGES[*]}"
    return 0
  fi

  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- processes -------------------------------------------------------------

# Prints the pid of a daemon that this state directory started and that still
# runs. Returns 1 if there is none. The command line must contain the path of
# this directory's ceph.conf, so a stale pid file whose pid now belongs to
# another process is not mistaken for the daemon.
daemon_pid() {
  local daemon="$1"
  local pid_file="$RUN_DIR/$daemon.pid"
  local pid

  [[ -f "$pid_file" ]] || return 1
  pid="$(<"$pid_file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
  printf '%s\n' "$pid"
}

is_daemon_running() {
  daemon_pid "$1" >/dev/null
}

# Returns 0 while PID runs. A zombie counts as exited, because forked daemons
# are reparented to PID 1, which may reap them late.
is_process_alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The state is the first field after the command name in parentheses.
  stat="${stat##*) }"
  [[ "${stat%% *}" != "Z" ]]
}

# Waits up to TENTHS tenths of a second for PID to exit. Returns 1 on timeout.
wait_for_exit() {
  local pid="$1" tenths="$2" attempt
  for ((attempt = 0; attempt < tenths; attempt++)); do
    is_process_alive "$pid" || return 0
    sleep 0.1
  done
  return 1
}

# Returns 0 if something accepts TCP connections on 127.0.0.1:PORT.
is_port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Returns 0 if an S3 server responds on ENDPOINT. RGW sends x-amz-request-id
# with every response, which distinguishes it from other HTTP servers.
is_endpoint_up() {
  curl -s -D - -o /dev/null --max-time 3 "$ENDPOINT/" 2>/dev/null | grep -qi '^x-amz-request-id:'
}

# Sends SIGTERM to a daemon, waits up to 20 s, then sends SIGKILL.
stop_daemon() {
  local daemon="$1"
  local pid
  if ! pid="$(daemon_pid "$daemon")"; then
    rm -f "$RUN_DIR/$daemon.pid"
    return 0
  fi

  log "stopping $daemon (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for_exit "$pid" 200; then
    log "$daemon (pid $pid) did not exit within 20 s of SIGTERM, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_for_exit "$pid" 50 || die "$daemon (pid $pid) did not exit after SIGKILL"
  fi
  rm -f "$RUN_DIR/$daemon.pid"
}

stop_all_daemons() {
  local index
  for ((index = ${#DAEMONS[@]} - 1; index >= 0; index--)); do
    stop_daemon "${DAEMONS[index]}"
  done
}

# Starts a Ceph daemon and waits for its pid file. The daemon forks into the
# background and writes the pid file itself (pid_file in ceph.conf).
launch_daemon() {
  local daemon="$1"
  shift
  if ! "$@" -c "$CONF" >>"$LOG_DIR/$daemon.stderr" 2>&1 </dev/null; then
    die_with_log "$daemon" "$daemon failed to start; see $LOG_DIR"
  fi

  local attempt
  for ((attempt = 0; attempt < 100; attempt++)); do
    is_daemon_running "$daemon" && return 0
    sleep 0.1
  done
  die_with_log "$daemon" "$daemon exited right after start; see $LOG_DIR"
}

# Runs the ceph CLI against this cluster. It fails instead of waiting forever
# when the monitor does not respond.
ceph_cli() {
  timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"
}

radosgw_admin() {
  timeout 60 radosgw-admin -c "$CONF" "$@"
}

# Runs the command CHECK... every 0.2 s until it succeeds. Exits with an
# error naming WHAT if DAEMON exits or CEPH_START_TIMEOUT passes first.
wait_until_ready() {
  local daemon="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + CEPH_START_TIMEOUT))
  until "$@"; do
    is_daemon_running "$daemon" || die_with_log "$daemon" "$daemon exited before $what; see $LOG_DIR"
    ((SECONDS < deadline)) ||
      die_with_log "$daemon" "timed out after ${CEPH_START_TIMEOUT} s waiting until $what; see $LOG_DIR"
    sleep 0.2
  done
}

is_monitor_ready() {
  ceph_cli mon stat >/dev/null 2>&1
}

is_osd_up() {
  ceph_cli osd dump 2>/dev/null | grep -qE '^osd\.0 up +in '
}

# --- creation --------------------------------------------------------------

write_config() {
  local fsid="$1"
  local osd_size_bytes=$((CEPH_OSD_SIZE_GIB * 1024 * 1024 * 1024))
  # \$cluster, \$name, \$id and \$channel are Ceph metavariables, expanded
  # by each daemon, so they are escaped here.
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_initial_members = a
mon_host = [v2:127.0.0.1:$CEPH_MON_PORT]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
ms_bind_msgr1 = false
ms_bind_msgr2 = true

# Authentication is off. Without cephx, msgr2 cannot use its "secure" mode,
# so every connection uses "crc".
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
ms_mon_service_mode = crc
ms_mon_cluster_mode = crc
ms_client_mode = crc
ms_service_mode = crc
ms_cluster_mode = crc

keyring = $CEPH_DIR/keyring
run_dir = $RUN_DIR
pid_file = $RUN_DIR/\$name.pid
admin_socket = $RUN_DIR/\$name.asok
log_file = $LOG_DIR/\$name.log
crash_dir = $CEPH_DIR/crash
mon_cluster_log_file = default=$LOG_DIR/\$cluster.\$channel.log cluster=$LOG_DIR/\$cluster.log

# One OSD, so every pool keeps a single replica and few placement groups.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_max_pg_per_osd = 1000
# The monitor stops when the free space of its disk falls below
# mon_data_avail_crit percent (default 5).
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# The monitor batches changes (a new pool, an OSD boot) for this long before
# it commits them. With the default of 1 s, the first start took about 24 s
# instead of about 10 s on a 2-core virtual machine.
paxos_propose_interval = 0.1

[mon]
err_to_stderr = false
mon_data = $CEPH_DIR/mon/\$cluster-\$id

[osd]
err_to_stderr = false
osd_data = $CEPH_DIR/osd/\$cluster-\$id
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = $osd_size_bytes
# BlueStore sizes its caches to reach this target (the default is 4 GiB).
osd_memory_target = 1073741824

[client.rgw.portcullis]
err_to_stderr = false
rgw_data = $CEPH_DIR/rgw
# Without tcp_nodelay, every response with a body waits about 40 ms for the
# client's delayed ACK (Nagle's algorithm).
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
# Deleted objects are removed from RADOS by garbage collection, by default
# 2 h later. Tests upload large blobs repeatedly, so free their space sooner.
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
EOF
}

create_monitor() {
  local fsid="$1"
  log "creating monitor mon.a on 127.0.0.1:$CEPH_MON_PORT"
  ceph-authtool --create-keyring "$CEPH_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$CEPH_MON_PORT]" "$CEPH_DIR/monmap" >/dev/null
  mkdir -p "$CEPH_DIR/mon/ceph-a"
  if ! ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$CEPH_DIR/keyring" \
    >>"$LOG_DIR/mon.a.stderr" 2>&1; then
    die_with_log mon.a "ceph-mon --mkfs failed"
  fi
}

# Registers osd.0 with the monitor and formats its BlueStore file. The
# monitor must run.
create_osd() {
  local osd_uuid
  osd_uuid="$(</proc/sys/kernel/random/uuid)"
  log "creating osd.0 (BlueStore on a sparse ${CEPH_OSD_SIZE_GIB} GiB file)"
  local osd_id
  osd_id="$(ceph_cli osd new "$osd_uuid")" || die_with_log mon.a "ceph osd new failed"
  [[ "$osd_id" == "0" ]] || die "ceph osd new returned id '$osd_id', expected 0"

  mkdir -p "$CEPH_DIR/osd/ceph-0"
  if ! ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$LOG_DIR/osd.0.stderr" 2>&1; then
    die_with_log osd.0 "ceph-osd --mkfs failed"
  fi
}

# Creates the pools that RGW would otherwise create on the first bucket and
# the first upload, so that tests do not pay for it.
create_bucket_pools() {
  local pools=(default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec)
  local commands="" pool
  for pool in "${pools[@]}"; do
    commands+="osd pool create $pool"$'\n'
    commands+="osd pool application enable $pool rgw"$'\n'
  done

  # Given commands on stdin, one ceph process runs them all, which saves its
  # start-up time of about 0.4 s per command. Its exit status ignores failed
  # commands, so the pool list is checked afterwards.
  ceph_cli <<<"$commands" >/dev/null 2>&1 || true
  local existing
  existing="$(ceph_cli osd pool ls)" || die_with_log mon.a "ceph osd pool ls failed"
  for pool in "${pools[@]}"; do
    grep -qxF "$pool" <<<"$existing" || die_with_log mon.a "creating pool $pool failed"
  done
}

# Deletes a state directory that this script created, after stopping its
# daemons. Rejects any other directory.
purge_state_dir() {
  [[ -d "$CEPH_DIR" ]] || return 0
  [[ -f "$OWNER_MARKER" ]] ||
    die "$CEPH_DIR was not created by this script (no $(basename "$OWNER_MARKER") file); delete it yourself"
  stop_all_daemons
  rm -rf -- "$CEPH_DIR"
}

# Creates a new cluster in an empty state directory and leaves the monitor
# and the OSD running.
bootstrap_cluster() {
  if [[ -d "$CEPH_DIR" ]] && [[ -n "$(ls -A "$CEPH_DIR")" ]]; then
    [[ -f "$OWNER_MARKER" ]] ||
      die "$CEPH_DIR is not empty and was not created by this script; set CEPH_DIR to another path"
    # A state directory without the bootstrap marker is left from an
    # interrupted first start. It contains no data worth keeping.
    log "removing the incomplete cluster in $CEPH_DIR"
    purge_state_dir
  fi

  mkdir -p "$CEPH_DIR" "$RUN_DIR" "$LOG_DIR" "$CEPH_DIR/crash" "$CEPH_DIR/rgw"
  touch "$OWNER_MARKER"
  local fsid
  fsid="$(</proc/sys/kernel/random/uuid)"
  printf '%s\n' "$fsid" >"$FSID_FILE"
  printf '%s\n' "$CEPH_MON_PORT" >"$MON_PORT_FILE"
  write_config "$fsid"

  create_monitor "$fsid"
  start_monitor
  create_osd
  start_osd
  create_bucket_pools
  touch "$BOOTSTRAP_MARKER"
}

# --- start -----------------------------------------------------------------

# Fails if something listens on PORT. VARIABLE names the setting to change.
check_port_free() {
  local port="$1" variable="$2"
  is_port_open "$port" || return 0
  die "port $port on 127.0.0.1 is already in use by another process; set $variable to a free port"
}

# Checks the ports of the monitor and of RGW unless this cluster's daemons
# already listen on them, so that a conflict stops `start` before it changes
# anything.
check_ports_free() {
  is_daemon_running mon.a || check_port_free "$CEPH_MON_PORT" CEPH_MON_PORT
  is_daemon_running client.rgw.portcullis || check_port_free "$RGW_PORT" RGW_PORT
}

start_monitor() {
  if ! is_daemon_running mon.a; then
    log "starting mon.a"
    launch_daemon mon.a ceph-mon -i a
  fi
  wait_until_ready mon.a "the monitor responds on 127.0.0.1:$CEPH_MON_PORT" is_monitor_ready
}

start_osd() {
  if ! is_daemon_running osd.0; then
    log "starting osd.0"
    launch_daemon osd.0 ceph-osd -i 0
  fi
  wait_until_ready osd.0 "osd.0 is up" is_osd_up
}

start_gateway() {
  if ! is_daemon_running client.rgw.portcullis; then
    log "starting client.rgw.portcullis on $ENDPOINT"
    launch_daemon client.rgw.portcullis radosgw -n client.rgw.portcullis
  fi
  wait_until_ready client.rgw.portcullis "RGW responds on $ENDPOINT" is_endpoint_up
}

# Creates the S3 user, or gives the existing user the configured key pair.
ensure_user() {
  local info
  if ! info="$(radosgw_admin user info --uid="$RGW_USER" 2>/dev/null)"; then
    log "creating S3 user $RGW_USER"
    radosgw_admin user create --uid="$RGW_USER" --display-name="Portcullis tests" \
      --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" >/dev/null ||
      die_with_log client.rgw.portcullis "radosgw-admin user create failed"
    return 0
  fi

  # radosgw-admin prints JSON with one '"key": "value"' pair per line.
  if grep -qF "\"access_key\": \"$RGW_ACCESS_KEY\"" <<<"$info" &&
    grep -qF "\"secret_key\": \"$RGW_SECRET_KEY\"" <<<"$info"; then
    return 0
  fi
  log "setting the key pair of S3 user $RGW_USER"
  radosgw_admin key create --uid="$RGW_USER" --key-type=s3 \
    --access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" >/dev/null ||
    die_with_log client.rgw.portcullis "radosgw-admin key create failed"
}

# Fails if CEPH_MON_PORT differs from the port the cluster was created with,
# or if RGW runs on a port other than RGW_PORT.
check_saved_ports() {
  local saved_mon_port
  saved_mon_port="$(<"$MON_PORT_FILE")"
  [[ "$saved_mon_port" == "$CEPH_MON_PORT" ]] ||
    die "the cluster in $CEPH_DIR was created with CEPH_MON_PORT=$saved_mon_port; set CEPH_MON_PORT=$saved_mon_port or run 'scripts/ceph-rgw.sh stop --purge'"

  is_daemon_running client.rgw.portcullis || return 0
  local running_port
  running_port="$(sed -n 's/^rgw_frontends = beast endpoint=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$CONF")"
  [[ "$running_port" == "$RGW_PORT" ]] ||
    die "RGW of $CEPH_DIR runs on port $running_port; set RGW_PORT=$running_port or run 'scripts/ceph-rgw.sh stop' first"
}

require_binaries() {
  local binary
  for binary in ceph ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool curl; do
    command -v "$binary" >/dev/null ||
      die "$binary not found; run 'scripts/ceph-rgw.sh install' first"
  done
}

cmd_start() {
  require_binaries
  local started_at=$SECONDS

  local all_running=true daemon
  for daemon in "${DAEMONS[@]}"; do
    is_daemon_running "$daemon" || all_running=false
  done
  if $all_running && is_endpoint_up; then
    ensure_user
    log "already running: S3 endpoint $ENDPOINT, state directory $CEPH_DIR"
    return 0
  fi

  if [[ -f "$BOOTSTRAP_MARKER" ]]; then
    log "starting the existing cluster in $CEPH_DIR"
    failure_hint="If the cluster in $CEPH_DIR is damaged, run 'scripts/ceph-rgw.sh stop --purge' and start again."
    check_saved_ports
    check_ports_free
    # The configuration is written again so that an existing state directory
    # gets the settings of this version of the script and the current RGW_PORT.
    write_config "$(<"$FSID_FILE")"
    start_monitor
    start_osd
  else
    log "creating a new cluster in $CEPH_DIR"
    check_ports_free
    bootstrap_cluster
  fi
  start_gateway
  ensure_user

  log "started in $((SECONDS - started_at)) s: S3 endpoint $ENDPOINT, state directory $CEPH_DIR"
}

# --- other commands --------------------------------------------------------

cmd_stop() {
  local purge=false
  case "${1:-}" in
    "") ;;
    --purge) purge=true ;;
    *) die "unknown option for stop: $1 (expected --purge)" ;;
  esac

  if [[ ! -d "$CEPH_DIR" ]]; then
    log "nothing to stop: $CEPH_DIR does not exist"
    return 0
  fi
  if $purge; then
    purge_state_dir
    log "stopped and deleted $CEPH_DIR"
    return 0
  fi
  stop_all_daemons
  log "stopped; data kept in $CEPH_DIR"
}

cmd_status() {
  if is_endpoint_up; then
    log "S3 endpoint $ENDPOINT responds"
    return 0
  fi
  log "S3 endpoint $ENDPOINT does not respond"
  return 1
}

cmd_env() {
  printf 'export S3_ENDPOINT=%q S3_REGION=us-east-1 S3_ACCESS_KEY_ID=%q S3_SECRET_ACCESS_KEY=%q S3_FORCE_PATH_STYLE=true\n' \
    "$ENDPOINT" "$RGW_ACCESS_KEY" "$RGW_SECRET_KEY"
}

main() {
  local command="${1:-help}"
  shift || true
  case "$command" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
