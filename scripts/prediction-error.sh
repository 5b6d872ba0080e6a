#!/usr/bin/env bash
# Measures the downtime prediction's error: runs `pgtwopass demo` N times
# (default 5; each on a new scratch cluster under pgbench load) and prints
# predicted and actual downtime, the error in %, and the parts of the
# actual downtime (stop, cold pass, start) as the copy's server.json and the
# demo's log record them. docs/benchmarks.md quotes its output.
#
#   bash scripts/prediction-error.sh [N] [demo flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
shift || true
export PATH="/usr/local/go/bin:$PATH"
go build -o bin/pgtwopass ./cmd/pgtwopass
tmp=$(mktemp -d /tmp/pgtwopass-prediction-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
printf '%-4s %10s %10s %8s %8s %8s %8s  %s\n' run predicted actual error stop cold start prediction
for i in $(seq 1 "$n"); do
	dir="$tmp/run$i"
	./bin/pgtwopass demo --dir "$dir" "$@" >"$tmp/out$i" 2>&1 || { cat "$tmp/out$i" >&2; exit 1; }
	line=$(grep -E '^downtime: [0-9.]+ s, predicted' "$tmp/out$i")
	actual=$(sed -E 's/^downtime: ([0-9.]+) s.*/\1/' <<<"$line")
	pred=$(sed -E 's/.*predicted ([0-9.]+) s.*/\1/' <<<"$line")
	err=$(sed -E 's/.*\(error ([-+0-9]+%)\).*/\1/' <<<"$line")
	stop=$(sed -nE 's/.*"stop_seconds": ([0-9.e-]+).*/\1/p' "$dir/copy/.pgtwopass/server.json")
	start=$(sed -nE 's/.*"start_seconds": ([0-9.e-]+).*/\1/p' "$dir/copy/.pgtwopass/server.json")
	cold=$(grep -E '^ +cold ' "$tmp/out$i" | awk '{print $2}')
	why=$(grep -E '^sync: predicted downtime' "$tmp/out$i" | sed -E 's/^sync: predicted downtime [0-9.]+s: //')
	printf '%-4s %9ss %9ss %8s %7.2fs %7ss %7.2fs  %s\n' "$i" "$pred" "$actual" "$err" "$stop" "$cold" "$start" "$why"
	rm -rf "$dir"
done
