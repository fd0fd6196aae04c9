#!/usr/bin/env bash
# Runs the whole test suite on a Debian machine with Node.js. It installs
# skopeo and Ceph when they are missing (as root, with apt-get), makes sure a
# PostgreSQL server is reachable, starts Ceph RGW for the S3 tests, then runs
# every test file with node's test runner.
#
# PostgreSQL: TEST_DATABASE_URL when set. Otherwise the machine's server on
# 127.0.0.1:5432, which is started with pg_ctlcluster when it is installed but
# down. Without either, an embedded PostgreSQL runs for the length of the run. TEST_POSTGRES=embedded
# forces the embedded one. SKIP_S3=1 runs without Ceph (S3 tests are skipped).
# Extra arguments are test files to run instead of all of them. Each file
# runs in its own process with a time limit (TEST_FILE_TIMEOUT seconds,
# default 300); see scripts/run-test-files.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'test.sh: %s\n' "$*" >&2; }

install_missing_packages() {
  local missing=()
  command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${missing[*]}: install them with apt-get (as root) and run again"
    exit 1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

postgres_reachable() {
  (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
}

start_machine_postgres() {
  postgres_reachable && return 0
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  local version
  for version in $(ls /etc/postgresql 2>/dev/null); do
    log "starting PostgreSQL $version on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do
    postgres_reachable && return 0
    sleep 1
  done
  return 1
}

install_missing_packages

started_ceph=0
if [ "${SKIP_S3:-0}" != "1" ]; then
  if ! bash scripts/ceph-rgw.sh status >/dev/null 2>&1; then
    bash scripts/ceph-rgw.sh install
    bash scripts/ceph-rgw.sh start
    started_ceph=1
  fi
  eval "$(bash scripts/ceph-rgw.sh env)"
  export S3_ENDPOINT S3_REGION S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY S3_FORCE_PATH_STYLE
  log "S3 tests use Ceph RGW at $S3_ENDPOINT"
else
  unset S3_ENDPOINT
  log "SKIP_S3=1: S3 tests are skipped"
fi
if [ "$started_ceph" = 1 ] && [ "${KEEP_CEPH:-0}" != "1" ]; then
  trap 'bash scripts/ceph-rgw.sh stop >/dev/null 2>&1 || true' EXIT
fi

# As root, embedded PostgreSQL runs its binaries from node_modules as the
# postgres system user, which needs search permission on every directory
# above the checkout. A checkout under a mode 0700 directory (as mktemp -d
# makes) lacks it, so it is granted here, one directory at a time.
grant_postgres_search_permission() {
  [ "$(id -u)" -eq 0 ] || return 0
  id postgres >/dev/null 2>&1 || return 0
  local directory
  directory="$(pwd)"
  while [ "$directory" != "/" ]; do
    if ! runuser -u postgres -- test -x "$directory" 2>/dev/null; then
      chmod o+x "$directory"
      log "granted search permission on $directory to the postgres user, which runs embedded PostgreSQL"
    fi
    directory="$(dirname "$directory")"
  done
}
grant_postgres_search_permission

shopt -s globstar nullglob
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(test/**/*.test.ts)
fi
runner=(bash scripts/run-test-files.sh "${files[@]}")

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  log "PostgreSQL: TEST_DATABASE_URL"
  "${runner[@]}"
elif [ "${TEST_POSTGRES:-}" != "embedded" ] && start_machine_postgres; then
  log "PostgreSQL: the machine's server on 127.0.0.1:5432"
  "${runner[@]}"
else
  log "PostgreSQL: embedded, for this run only"
  node --import tsx scripts/with-embedded-postgres.ts "${runner[@]}"
fi
