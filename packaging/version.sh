#!/bin/sh
# Prints pgtwopass's version from git, for the linker flags of make build,
# make deb and goreleaser: what git describe says of the last tag v* without
# the v (1.2.3, or 1.2.3-4-gabcdef0 four commits later, -dirty with
# uncommitted changes). Before the first tag it counts from v0.0.0:
# 0.0.0-N-gHASH. Outside a git work tree: 0.0.0-unknown.
#
# --deb prints the form of Debian's version numbers, which sort a
# pre-release lower and take no hyphen without a revision:
# 1.2.3+git4.gabcdef0, 0.0.0+gitN.gHASH (+dirty), 1.2.3~rc1.
set -eu
cd "$(dirname "$0")/.."
if v=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
	v=${v#v}
elif n=$(git rev-list --count HEAD 2>/dev/null); then
	v=0.0.0-$n-g$(git rev-parse --short HEAD)
	if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		v=$v-dirty
	fi
else
	v=0.0.0-unknown
fi
if [ "${1:-}" = --deb ]; then
	# 1.2.3-4-gabc-dirty -> 1.2.3+git4.gabc+dirty; 1.2.3-rc1 -> 1.2.3~rc1.
	v=$(printf '%s\n' "$v" | sed -E 's/-dirty$/+dirty/; s/-([0-9]+)-(g[0-9a-f]+)(\+dirty)?$/+git\1.\2\3/; s/-/~/g')
fi
printf '%s\n' "$v"
