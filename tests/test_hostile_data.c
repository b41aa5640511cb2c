/* test_hostile_data.c - malformed and unusual event logs, each with its
 * pinned outcome: status and the message with FILE:LINE:COL.  These extend
 * tests/test_reader.c (which has the basic wrong column counts, bad
 * numbers, a 1 MiB line, NUL in an id, truncated / corrupt gzip) with the
 * cases it does not cover.
 *
 * Decisions pinned here (docs/reliability.md):
 *   - ids are bytes: invalid UTF-8, a BOM that is not at the start of the
 *     file, a stray CR or quote inside an id are kept verbatim;
 *   - only a leading quote starts a quoted field, and a quoted field ends
 *     on its line (no multi-line fields);
 *   - a timestamp is a decimal number of at most 127 characters, with
 *     optional surrounding spaces; hex, nan, inf and overflow are refused;
 *   - NUL bytes are refused anywhere, inside quotes too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data/dataset.h"
#include "util/util.h"

static char tmpdir[64];

static const char *put(const char *name, const void *data, size_t n) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) {
        perror(path);
        exit(1);
    }
    fclose(f);
    return path;
}

static unsigned char *gzip_of(const void *data, size_t n, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (unsigned char *)(uintptr_t)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* Reads name (written with data) and checks the pinned outcome.  msg is
 * matched as "NAME" + msg when it starts with ':' (FILE:LINE:COL), else as
 * a plain substring.  Returns the dataset on success (caller frees). */
static rr_dataset *expect(const char *name, const void *data, size_t n, const rr_read_opts *o, rr_status want,
                          const char *msg, int line) {
    const char *path = put(name, data, n);
    rr_dataset *d = (rr_dataset *)1;
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_status st = rr_dataset_read(path, o, &d, &err);
    CHECK_MSG(st == want, "line %d (%s): status %s, want %s: %s", line, name, rr_status_str(st), rr_status_str(want),
              err.msg);
    if (st != RR_OK) {
        CHECK_MSG(d == NULL, "line %d: a failed read returned a dataset", line);
        char full[512];
        if (msg[0] == ':') snprintf(full, sizeof full, "%s%s", name, msg);
        else snprintf(full, sizeof full, "%s", msg);
        CHECK_MSG(strstr(err.msg, full) != NULL, "line %d: message '%s' lacks '%s'", line, err.msg, full);
        return NULL;
    }
    return d;
}
#define EXPECT_S(name, text, o, st, msg) expect(name, text, strlen(text), o, st, msg, __LINE__)
#define EXPECT_B(name, arr, o, st, msg) expect(name, arr, sizeof(arr) - 1, o, st, msg, __LINE__)

static int item_is(const rr_dataset *d, size_t e, const char *id, size_t n) {
    size_t l;
    const char *p = rr_vocab_id(&d->items, d->s.items[e], &l);
    return l == n && !memcmp(p, id, n);
}
static int sess_is(const rr_dataset *d, size_t s, const char *id, size_t n) {
    size_t l;
    const char *p = rr_vocab_id(&d->sessions, d->sess_id[s], &l);
    return l == n && !memcmp(p, id, n);
}

#define H "session_id\titem_id\ttimestamp\n"
#define HC "session_id,item_id,timestamp\n"

static void test_bytes_ids(void) {
    rr_dataset *d;
    /* 1 invalid UTF-8 in ids is kept byte for byte */
    d = EXPECT_S("utf8.tsv", H "\xff\xfe\tcaf\xc3\t1\n\xff\xfe\t\xc0\x80\t2\n", NULL, RR_OK, "");
    if (d) {
        CHECK(rr_dataset_n_sessions(d) == 1 && rr_dataset_n_items(d) == 2);
        CHECK(sess_is(d, 0, "\xff\xfe", 2) && item_is(d, 0, "caf\xc3", 4) && item_is(d, 1, "\xc0\x80", 2));
        rr_dataset_free(d);
    }
    /* 2 a BOM on a later line is part of the id, not skipped */
    d = EXPECT_S("bom2.tsv", H "\xef\xbb\xbf" "1\ta\t1\n1\ta\t2\n", NULL, RR_OK, "");
    if (d) {
        CHECK(rr_dataset_n_sessions(d) == 2);
        CHECK(sess_is(d, 0, "\xef\xbb\xbf" "1", 4) && sess_is(d, 1, "1", 1));
        rr_dataset_free(d);
    }
    /* 3 a BOM before a quoted CSV header */
    d = EXPECT_S("bomq.csv", "\xef\xbb\xbf\"session_id\",\"item_id\",\"timestamp\"\n\"1\",x,5\n", NULL, RR_OK, "");
    if (d) {
        CHECK(rr_dataset_n_events(d) == 1 && item_is(d, 0, "x", 1) && d->s.times[0] == 5);
        rr_dataset_free(d);
    }
    /* 4 a CR inside a field (not at the line end) is data */
    d = EXPECT_S("cr.tsv", H "1\ta\rb\t1\r\n", NULL, RR_OK, "");
    if (d) {
        CHECK(item_is(d, 0, "a\rb", 3));
        rr_dataset_free(d);
    }
    /* 5 a quote inside an unquoted field is data */
    d = EXPECT_S("midq.csv", HC "1,a\"b,1\n", NULL, RR_OK, "");
    if (d) {
        CHECK(item_is(d, 0, "a\"b", 3));
        rr_dataset_free(d);
    }
    /* 6 a tab inside a quoted CSV id is data */
    d = EXPECT_S("qtab.csv", HC "1,\"a\tb\",1\n", NULL, RR_OK, "");
    if (d) {
        CHECK(item_is(d, 0, "a\tb", 3));
        rr_dataset_free(d);
    }
    /* 7 an id of exactly 255 bytes in a quoted field with escapes */
    char buf[600];
    int n = snprintf(buf, sizeof buf, HC "1,\"");
    for (int i = 0; i < 127; i++) n += snprintf(buf + n, sizeof buf - (size_t)n, "\"\"x");
    n += snprintf(buf + n, sizeof buf - (size_t)n, "y\",1\n");
    d = expect("q255.csv", buf, (size_t)n, NULL, RR_OK, "", __LINE__);
    if (d) {
        size_t l;
        rr_vocab_id(&d->items, d->s.items[0], &l);
        CHECK(l == 255);
        rr_dataset_free(d);
    }
}

static void test_bad_fields(void) {
    /* 8 session id of 256 bytes */
    char buf[2048];
    int n = snprintf(buf, sizeof buf, H);
    memset(buf + n, 's', 256);
    n += 256;
    n += snprintf(buf + n, sizeof buf - (size_t)n, "\ti\t1\n");
    expect("sid256.tsv", buf, (size_t)n, NULL, RR_ERR_PARSE,
           ":2:1: expected a session id of at most 255 bytes, found 256 bytes", __LINE__);
    /* 9 an empty quoted session id */
    EXPECT_S("qempty.csv", HC "\"\",a,1\n", NULL, RR_ERR_PARSE, ":2:2: expected a session id, found an empty field");
    /* 10 a quoted field does not continue on the next line */
    EXPECT_S("qmulti.csv", HC "1,\"a\nb\",1\n", NULL, RR_ERR_PARSE,
             ":2:3: expected a closing quote for the field starting here, found the end of the line");
    /* 11 an unterminated quote on the last line, no final newline */
    EXPECT_S("qlast.csv", HC "1,a,1\n2,\"b,2", NULL, RR_ERR_PARSE, ":3:3: expected a closing quote");
    /* 12 NUL inside a quoted field */
    EXPECT_B("qnul.csv", HC "1,\"a\0b\",1\n", NULL, RR_ERR_PARSE, ":2:5: expected text, found a NUL byte");
    /* 13 NUL in the header */
    EXPECT_B("hnul.tsv", "session_id\titem\0_id\ttimestamp\n1\ta\t1\n", NULL, RR_ERR_PARSE,
             ":1:16: expected text, found a NUL byte");
    /* 14 a file of NUL bytes */
    EXPECT_B("allnul.tsv", "\0\0\0\0", NULL, RR_ERR_PARSE, ":1:1: expected text, found a NUL byte");
    /* 15 a whitespace-only row is a row with one field */
    EXPECT_S("space.tsv", H "1\ta\t1\n \n", NULL, RR_ERR_PARSE, ":3:1: expected 3 fields, found 1");
}

static void test_times(void) {
    rr_dataset *d;
    /* 16..21 numbers the reader refuses */
    EXPECT_S("hex.tsv", H "1\ta\t0x10\n", NULL, RR_ERR_PARSE, ":2:5: expected a number, found '0x10'");
    EXPECT_S("nan.tsv", H "1\ta\tnan\n", NULL, RR_ERR_PARSE, ":2:5: expected a number, found 'nan'");
    EXPECT_S("ovf.tsv", H "1\ta\t-1e400\n", NULL, RR_ERR_PARSE, ":2:5: expected a finite number, found '-1e400'");
    EXPECT_S("dot.tsv", H "1\ta\t.\n", NULL, RR_ERR_PARSE, ":2:5: expected a number, found '.'");
    EXPECT_S("exp.tsv", H "1\ta\t1e\n", NULL, RR_ERR_PARSE, ":2:5: expected a number, found '1e'");
    EXPECT_S("comma.tsv", H "1\ta\t1,5\n", NULL, RR_ERR_PARSE, ":2:5: expected a number, found '1,5'");
    /* 22 a 200-digit timestamp is over the 127-character limit */
    char buf[512];
    int n = snprintf(buf, sizeof buf, H "1\ta\t");
    memset(buf + n, '9', 200);
    n += 200;
    buf[n++] = '\n';
    expect("long_num.tsv", buf, (size_t)n, NULL, RR_ERR_PARSE, ":2:5: expected a number, found '9999", __LINE__);
    /* 23 accepted forms: spaces around, sign, trailing dot, negative */
    d = EXPECT_S("forms.tsv", H "1\ta\t 12 \n1\tb\t+13\n1\tc\t14.\n2\td\t-5\n", NULL, RR_OK, "");
    if (d) {
        CHECK(d->s.times[0] == 12 && d->s.times[1] == 13 && d->s.times[2] == 14 && d->s.times[3] == -5);
        rr_dataset_free(d);
    }
}

static void test_structure(void) {
    rr_read_opts o;
    /* 24 header only, CRLF */
    EXPECT_S("hdrcrlf.tsv", "session_id\titem_id\ttimestamp\r\n", NULL, RR_ERR_EMPTY,
             "hdrcrlf.tsv: no data rows after the header");
    /* 25 old Mac line ends (CR only): the whole file is one header line,
     * and the message shows the CR that glued "timestamp" to the row */
    EXPECT_S("mac.tsv", "session_id\titem_id\ttimestamp\r1\ta\t1\r", NULL, RR_ERR_PARSE,
             ":1:1: expected a time column (timestamp, Time, time, ts), found header 'session_id', 'item_id', "
             "'timestamp\\x0d1'");
    /* 26 every row bad, within the skip budget */
    rr_read_opts_default(&o);
    o.max_bad_rows = 5;
    EXPECT_S("allbad.tsv", H "1\ta\n2\tb\n", &o, RR_ERR_EMPTY, "allbad.tsv: no data rows after the header (all rows were bad)");
    /* 27 one bad row over the budget */
    o.max_bad_rows = 2;
    EXPECT_S("overbad.tsv", H "1\ta\n1\tb\t1\n2\tx\ty\n3\n", &o, RR_ERR_PARSE, ":5:1: expected 3 fields, found 1");
    /* 28 the same explicit column for session and item */
    rr_read_opts_default(&o);
    o.session_col = "item_id";
    EXPECT_S("samecol.tsv", H "1\ta\t1\n", &o, RR_ERR_PARSE,
             ":1:1: expected distinct session, item and time columns, found header 'session_id', 'item_id', 'timestamp'");
    /* 29 a named time column that is not there */
    rr_read_opts_default(&o);
    o.time_col = "when";
    EXPECT_S("notime2.tsv", H "1\ta\t1\n", &o, RR_ERR_PARSE, ":1:1: expected a time column ('when')");
    /* 30 invalid UTF-8 in the header: no known column names */
    EXPECT_S("hutf8.tsv", "sess\xff\titem\xfe\tts\n1\ta\t1\n", NULL, RR_ERR_PARSE, ":1:1: expected a session column");
    /* 31 an explicit separator the file does not use */
    rr_read_opts_default(&o);
    o.sep = ';';
    EXPECT_S("wrongsep.tsv", H "1\ta\t1\n", &o, RR_ERR_PARSE, ":1:1: expected a session column");
    /* 32 a very wide header: 20000 columns, three of them used */
    size_t cols = 20000, cap = cols * 8 + 256;
    char *w = malloc(cap);
    size_t n = 0;
    for (size_t c = 0; c < cols; c++)
        n += (size_t)snprintf(w + n, cap - n, "%s%s", c ? "\t" : "",
                              c == 7 ? "session_id" : c == 19990 ? "item_id" : c == 3 ? "timestamp" : "x");
    w[n++] = '\n';
    for (size_t c = 0; c < cols; c++) n += (size_t)snprintf(w + n, cap - n, "%s%s", c ? "\t" : "", c == 3 ? "5" : "v");
    w[n++] = '\n';
    rr_dataset *d = expect("wide.tsv", w, n, NULL, RR_OK, "", __LINE__);
    if (d) {
        CHECK(rr_dataset_n_events(d) == 1 && d->s.times[0] == 5);
        rr_dataset_free(d);
    }
    free(w);
    /* 33 /dev/null: an empty file */
    rr_dataset *dn = NULL;
    rr_error err;
    CHECK(rr_dataset_read("/dev/null", NULL, &dn, &err) == RR_ERR_EMPTY && strstr(err.msg, "/dev/null: empty file"));
}

static void test_long_lines(void) {
    /* 34 a 10 MB line without a newline: refused once the 1 MiB window
     * fills, without buffering the rest */
    size_t big = (size_t)10 << 20;
    char *b = malloc(big + 64);
    int h = snprintf(b, 64, H);
    memset(b + h, 'q', big);
    expect("10mb.tsv", b, (size_t)h + big, NULL, RR_ERR_PARSE,
           ":2:1: expected a line of at most 1048576 bytes, found longer", __LINE__);
    /* 35 the same inside gzip */
    size_t gl;
    unsigned char *gz = gzip_of(b, (size_t)h + big, &gl);
    expect("10mb.tsv.gz", gz, gl, NULL, RR_ERR_PARSE, ":2:1: expected a line of at most 1048576 bytes", __LINE__);
    free(gz);
    /* 36 10 MB of newlines in gzip: blank lines, streamed, empty */
    memset(b, '\n', big);
    gz = gzip_of(b, big, &gl);
    expect("newlines.tsv.gz", gz, gl, NULL, RR_ERR_EMPTY, "newlines.tsv.gz: empty file: expected a header row", __LINE__);
    free(gz);
    free(b);
}

static void test_gzip(void) {
    const char *text = H "1\ta\t1\n1\tb\t2\n";
    size_t gl;
    unsigned char *gz = gzip_of(text, strlen(text), &gl);
    /* 37 only the 10-byte gzip header */
    expect("hdr.gz", gz, 10, NULL, RR_ERR_FORMAT, "hdr.gz: truncated gzip data", __LINE__);
    /* 38 a valid header, then garbage deflate data */
    unsigned char bad[64];
    memcpy(bad, gz, 10);
    memset(bad + 10, 0xff, sizeof bad - 10);
    expect("garbage.gz", bad, sizeof bad, NULL, RR_ERR_FORMAT, "garbage.gz: corrupt gzip data near compressed byte",
           __LINE__);
    /* 39 a wrong length in the trailer (ISIZE), CRC intact */
    unsigned char *c = malloc(gl);
    memcpy(c, gz, gl);
    c[gl - 1] ^= 0x01;
    expect("isize.gz", c, gl, NULL, RR_ERR_FORMAT, "corrupt gzip data", __LINE__);
    /* 40 cut just before the trailer */
    expect("notrailer.gz", gz, gl - 8, NULL, RR_ERR_FORMAT, "truncated gzip data", __LINE__);
    free(c);
    free(gz);
    /* 41 gzip of nothing */
    gz = gzip_of("", 0, &gl);
    expect("empty.gz", gz, gl, NULL, RR_ERR_EMPTY, "empty.gz: empty file: expected a header row", __LINE__);
    free(gz);
    /* 42 a parse error inside gzip names the decompressed line */
    const char *badrow = H "1\ta\t1\n1\tb\tzz\n";
    gz = gzip_of(badrow, strlen(badrow), &gl);
    expect("badrow.gz", gz, gl, NULL, RR_ERR_PARSE, ":3:5: expected a number, found 'zz'", __LINE__);
    free(gz);
}

int main(void) {
    strcpy(tmpdir, "/tmp/rr_hostile_data_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_bytes_ids();
    test_bad_fields();
    test_times();
    test_structure();
    test_long_lines();
    test_gzip();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_hostile_data");
}
