#!/usr/bin/env bash
# Installs what pgtwopass's tests, demo and benchmarks need, when it is
# missing: PostgreSQL's server programs (initdb, pg_ctl, pgbench,
# pg_checksums, ...) and rsync. Debian/Ubuntu with apt-get; as root.
set -euo pipefail

need=()
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
	need+=(postgresql)
fi
if [ "${1:-}" = "--with-rsync" ] && ! command -v rsync >/dev/null; then
	need+=(rsync)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "pgtwopass: missing ${need[*]}: install them (e.g. apt-get install ${need[*]}) and try again" >&2
	exit 1
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package creates and starts a default cluster; the tests make
# their own and do not need it running.
if command -v pg_lsclusters >/dev/null; then
	pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
		pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
	done
fi
