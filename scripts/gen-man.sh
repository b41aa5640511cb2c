#!/usr/bin/env bash
# gen-man.sh RNNREC_BIN > docs/rnnrec.1 - builds the man page from the
# binary's own --help texts, so the page always matches the options.
set -euo pipefail
BIN=${1:-build/rnnrec}
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/" -e 's/-/\\-/g'; }
ver=$("$BIN" --version | awk '{print $2}')
cat <<EOT
.TH RNNREC 1 "$(date -u +%Y-%m-%d)" "rnnrec $ver" "User Commands"
.SH NAME
rnnrec \\- recurrent-neural-network (GRU4Rec) session recommenders and baselines
.SH SYNOPSIS
.B rnnrec
.I COMMAND
[\\fIoptions\\fR] ...
.SH DESCRIPTION
rnnrec reads session event logs (TSV/CSV, plain or gzip), preprocesses them,
trains GRU, LSTM and plain RNN recommenders faithful to GRU4Rec and strong
baselines, evaluates them by ranking the full catalogue, and serves
recommendations from the command line or over HTTP.
.PP
Exit status: 0 on success, 1 on a runtime error, 2 on a usage error.
Errors are written to standard error.
EOT
for cmd in synth prep train eval recommend info serve; do
  echo ".SH \"rnnrec $cmd\""
  echo ".nf"
  "$BIN" "$cmd" --help | esc
  echo ".fi"
done
cat <<EOT
.SH FILES
Model files are versioned, checksummed containers; see docs/model-format.md
in the source tree.
.SH SEE ALSO
The README and docs/ of the rnnrec source tree.
EOT
