#!/usr/bin/env bash
# cli_install.sh - the installed library as another project sees it: `cmake
# --install` of this build into a temporary prefix, then examples/quickstart.c
# compiled against it through pkg-config and through CMake's
# find_package(rnnrec), shared and static, each run to its end.
set -u
. "$(dirname "$0")/harness.sh" cli_install
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$(dirname "$BIN")" && pwd)
P=$T/prefix
expect_rc 0 "cmake --install" cmake --install "$BUILD" --prefix "$P"
[ -f "$P/include/rnnrec.h" ] && [ -x "$P/bin/rnnrec" ] && ok || bad "install lacks the header or the binary"
pc=$(find "$P" -name rnnrec.pc | head -1)
[ -n "$pc" ] && ok || bad "no rnnrec.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir rnnrec)
[ "$(cd "$libdir" 2>/dev/null && pwd -P)" = "$(cd "$(dirname "$(dirname "$pc")")" && pwd -P)" ] && ok ||
    bad "rnnrec.pc points at $libdir, not at the prefix it was installed to"
run() { # run WHAT EXE: the program trains, evaluates and recommends
    (cd "$T" && LD_LIBRARY_PATH="$libdir" "$2" "$T/$1.rr") >"$T/out" 2>"$T/err"
    local rc=$?
    [ $rc -eq 0 ] && grep -q "^gru model, 500 items; recall@20 0\.[0-9]*" "$T/out" && grep -q "^1\. item " "$T/out" && ok ||
        bad "$1: exit $rc: $(head -c 300 "$T/out") $(head -c 300 "$T/err")"
}
expect_rc 0 "cc with pkg-config" sh -c "cc '$SRC/examples/quickstart.c' \$(pkg-config --cflags --libs rnnrec) -o '$T/qs_shared'"
run shared "$T/qs_shared"
expect_rc 0 "cc with pkg-config --static" sh -c \
    "cc '$SRC/examples/quickstart.c' -static-libgcc \$(pkg-config --cflags rnnrec) '$libdir/librnnrec.a' \$(pkg-config --static --libs-only-l rnnrec | sed 's/-lrnnrec//') -o '$T/qs_static'"
run static "$T/qs_static"
expect_rc 0 "cmake configure with find_package" cmake -S "$SRC/examples" -B "$T/cm" -DCMAKE_PREFIX_PATH="$P"
expect_rc 0 "cmake build" cmake --build "$T/cm"
run cmake "$T/cm/quickstart"
expect_rc 0 "cmake configure, static" cmake -S "$SRC/examples" -B "$T/cms" -DCMAKE_PREFIX_PATH="$P" -DQUICKSTART_STATIC=ON
expect_rc 0 "cmake build, static" cmake --build "$T/cms"
run cmake_static "$T/cms/quickstart"
echo "cli_install: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
