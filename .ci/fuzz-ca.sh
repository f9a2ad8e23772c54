#!/usr/bin/env bash
# Short fuzz runs of the CA side and the config parser, for CI
# (`bash .ci/fuzz-ca.sh`): each native Go fuzz target for FUZZTIME (default
# 4s), about 30 s in all on a warm build cache. A crash fails the script and
# leaves its input in the package's testdata/fuzz/<Target>/: commit it with
# the fix, as a regression test that `go test` then runs every time.
#
# A long run (the README's "CA connectors" section): FUZZTIME=60s bash .ci/fuzz-ca.sh
#
# -fuzzminimizetime 0: Go minimizes every new interesting input for up to
# 60 s by default, which stalls a short run on these targets (large DER
# inputs); crashers are still written, unminimized.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-4s}"
targets=(
  "./shared/ca/scep FuzzGetCACert"
  "./shared/ca/scep FuzzCertRep"
  "./shared/ca/scep FuzzNDESAdminPage"
  "./shared/ca/est FuzzResponses"
  "./shared/config FuzzParseAdapter"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  printf '== %s %s (%s)\n' "$pkg" "$name" "$fuzztime"
  corpus="$pkg/testdata/fuzz/$name"
  before="$(ls "$corpus" 2>/dev/null | sort || true)"
  if out="$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 0 "$pkg" 2>&1)"; then
    printf '%s\n' "$out" | tail -n 3
    continue
  fi
  after="$(ls "$corpus" 2>/dev/null | sort || true)"
  printf '%s\n' "$out" | tail -n 40
  # Go 1.26's fuzz coordinator can end a duration-bounded run with a bare
  # "context deadline exceeded" and no input (golang/go#75804, fixed in Go
  # 1.27): a failure counts only when it wrote a reproducer, or is not that.
  if [[ "$before" == "$after" ]] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
    echo "fuzz-ca.sh: $name: ignored the fuzz coordinator's deadline race (golang/go#75804): no failing input" >&2
    continue
  fi
  echo "fuzz-ca.sh: $name failed (its input is in $corpus/)" >&2
  exit 1
done
