#!/usr/bin/env bash
# Fuzzes every native Go fuzz target (func FuzzXxx) of the given packages for
# FUZZTIME each (default 10s). go test -fuzz takes one target per run, so
# this loops over them, printing a line per target. A finding is written by
# go test under the package's testdata/fuzz/<target>/ and then runs as a
# test case in every `go test`: commit it with the fix.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
status=0
for pkg in "$@"; do
	for dir in $($GO list -f '{{.Dir}}' "$pkg"); do
		targets=$(grep -hoE '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' | sort -u || true)
		for target in $targets; do
			rel=${dir#"$PWD"/}
			echo "==> fuzz ./$rel $target for $FUZZTIME"
			if ! (cd "$dir" && $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" . > /tmp/fuzz.$$.log 2>&1); then
				echo "FAIL ./$rel $target:"
				tail -n 30 /tmp/fuzz.$$.log
				status=1
			fi
		done
	done
done
rm -f /tmp/fuzz.$$.log
exit $status
