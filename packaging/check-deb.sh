#!/usr/bin/env bash
# CI: installs the .deb that make deb built, with dpkg -i, checks what it
# installed (the version, the man pages, the shell completion, the systemd
# units with systemd-analyze verify) and removes it again. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(ls -t build/pgtwopass_*.deb | head -n 1)
need=()
command -v man >/dev/null || need+=(man-db)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
fail() { echo "check-deb: $*" >&2; exit 1; }

dpkg -i "$deb"
trap 'dpkg -r pgtwopass >/dev/null' EXIT
version=$(pgtwopass --version)
echo "$version"
[[ $version == "pgtwopass $(sh packaging/version.sh) (commit $(git rev-parse HEAD), go"* ]] ||
	fail "pgtwopass --version does not say the version and commit of this tree"
for page in pgtwopass pgtwopass-prepare pgtwopass-finish pgtwopass-status; do
	man -w "$page"
done
MANPAGER=cat MANWIDTH=80 man pgtwopass-finish 2>&1 | grep -q '^EXAMPLES' || fail "man pgtwopass-finish has no EXAMPLES"
bash -c 'source /usr/share/bash-completion/completions/pgtwopass && complete -p pgtwopass' >/dev/null ||
	fail "the bash completion does not load"
units=(/usr/lib/systemd/system/pgtwopass-prepare@.service /usr/lib/systemd/system/pgtwopass-prepare@.timer)
grep -q '^ExecStart=/usr/bin/pgtwopass prepare ' "${units[0]}" || fail "the service does not run /usr/bin/pgtwopass"
# verify exits 0 on unknown keys and bad values: any output fails.
out=$(systemd-analyze verify "${units[@]}" 2>&1) || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
echo "systemd-analyze verify: ${units[*]}: OK"
