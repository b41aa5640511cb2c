# harness.sh - shared pieces of the CLI shell tests (tests/cli_*.sh source
# it): the binary, a temporary folder removed on exit, pass/fail counters
# and checks of exit codes and output.  Usage: . harness.sh NAME
BIN=${RR_BIN:?RR_BIN must point at the rnnrec binary}
T=$(mktemp -d "${TMPDIR:-/tmp}/rr_$1.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
expect_rc() { # expect_rc WANT DESCRIPTION CMD...: exit code; output kept in $T/out, $T/err
    local want=$1 what=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else bad "$what: exit $rc, wanted $want: $(head -c 300 "$T/err")"; fi
}
expect_err() { # expect_err SUBSTRING DESCRIPTION: checks the last stderr
    if grep -qF -- "$1" "$T/err"; then ok; else bad "$2: stderr lacks '$1': $(head -c 300 "$T/err")"; fi
}
expect_out() { # expect_out SUBSTRING DESCRIPTION: checks the last stdout
    if grep -qF -- "$1" "$T/out"; then ok; else bad "$2: stdout lacks '$1': $(head -c 300 "$T/out")"; fi
}
