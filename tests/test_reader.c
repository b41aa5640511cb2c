/* test_reader.c - the event-log reader and writer: formats, quoting, column
 * selection, ordering, gzip, every bad-input case with its pinned status
 * and FILE:LINE:COL message, and the shared real datasets when present. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data/dataset.h"
#include "util/util.h"
#include "rnnrec.h"

static char tmpdir[64];

static const char *path_of(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static const char *put(const char *name, const void *data, size_t n) {
    const char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return p;
}

static const char *puts_(const char *name, const char *text) { return put(name, text, strlen(text)); }

/* gzip of data as `members` concatenated members (split evenly). */
static unsigned char *gzip_of(const char *data, size_t n, int members, size_t *out_len) {
    size_t cap = n + 1024 + (size_t)members * 64, len = 0;
    unsigned char *out = malloc(cap);
    size_t per = (n + (size_t)members - 1) / (size_t)members;
    for (int m = 0; m < members; m++) {
        size_t a = (size_t)m * per, b = a + per < n ? a + per : n;
        if (a > n) a = n;
        z_stream z;
        memset(&z, 0, sizeof z);
        deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        z.next_in = (unsigned char *)data + a;
        z.avail_in = (uInt)(b - a);
        z.next_out = out + len;
        z.avail_out = (uInt)(cap - len);
        int r = deflate(&z, Z_FINISH);
        if (r != Z_STREAM_END) {
            fprintf(stderr, "deflate failed\n");
            exit(1);
        }
        len = cap - z.avail_out;
        deflateEnd(&z);
    }
    *out_len = len;
    return out;
}

/* Reads path and checks the status and that the message contains want. */
static rr_dataset *expect(const char *path, const rr_read_opts *o, rr_status want_st,
                          const char *want_msg, int line) {
    rr_error err;
    memset(&err, 0, sizeof err);
    rr_dataset *d = NULL;
    rr_status st = rr_dataset_read(path, o, &d, &err);
    CHECK_MSG(st == want_st, "line %d: status %d (%s), want %d; msg: %s", line, (int)st,
              rr_status_str(st), (int)want_st, err.msg);
    if (want_msg) CHECK_MSG(strstr(err.msg, want_msg) != NULL, "line %d: message '%s' lacks '%s'", line, err.msg, want_msg);
    if (st != RR_OK) CHECK(d == NULL);
    return d;
}
#define EXPECT(p, o, st, msg) expect(p, o, st, msg, __LINE__)

static int id_is(const rr_vocab *v, int32_t i, const char *s) {
    size_t n;
    const char *p = rr_vocab_id(v, i, &n);
    return n == strlen(s) && !memcmp(p, s, n);
}

/* Item id of event e of dataset d. */
static int ev_item_is(const rr_dataset *d, int64_t e, const char *s) {
    return id_is(&d->items, d->s.items[e], s);
}

static void test_basic(void) {
    const char *p = puts_("basic.tsv",
                          "session_id\titem_id\ttimestamp\n"
                          "s1\tA\t10\n"
                          "s2\tB\t5\n"
                          "s1\tC\t11\n"
                          "s2\tA\t6\n"
                          "s3\tD\t1\n");
    rr_dataset *d = EXPECT(p, NULL, RR_OK, NULL);
    if (!d) return;
    CHECK(rr_dataset_n_events(d) == 5);
    CHECK(rr_dataset_n_sessions(d) == 3);
    CHECK(rr_dataset_n_items(d) == 4);
    CHECK(rr_dataset_n_bad_rows(d) == 0);
    /* sessions in order of first appearance: s1, s2, s3 */
    CHECK(id_is(&d->sessions, d->sess_id[0], "s1"));
    CHECK(id_is(&d->sessions, d->sess_id[1], "s2"));
    CHECK(id_is(&d->sessions, d->sess_id[2], "s3"));
    CHECK(d->s.offsets[1] == 2 && d->s.offsets[2] == 4 && d->s.offsets[3] == 5);
    CHECK(ev_item_is(d, 0, "A") && ev_item_is(d, 1, "C"));
    CHECK(ev_item_is(d, 2, "B") && ev_item_is(d, 3, "A"));
    CHECK(d->s.times[0] == 10 && d->s.times[1] == 11 && d->s.times[4] == 1);
    rr_dataset_free(d);
}

static void test_order(void) {
    /* Session b out of order with a tie: the tie keeps file order. */
    const char *p = puts_("order.tsv",
                          "session_id\titem_id\ttimestamp\n"
                          "b\tx\t5\n"
                          "a\tq\t1\n"
                          "b\ty\t3\n"
                          "b\tz\t3\n"
                          "b\tw\t1\n");
    rr_dataset *d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        CHECK(id_is(&d->sessions, d->sess_id[0], "b"));
        CHECK(ev_item_is(d, 0, "w") && ev_item_is(d, 1, "y") && ev_item_is(d, 2, "z") &&
              ev_item_is(d, 3, "x"));
        CHECK(d->s.times[0] == 1 && d->s.times[1] == 3 && d->s.times[2] == 3 && d->s.times[3] == 5);
        rr_dataset_free(d);
    }
    /* A long shuffled session (merge sort path): compare to a reference
     * stable insertion sort of (time, file position). */
    enum { N = 500 };
    char *buf = malloc(N * 32 + 64);
    size_t n = (size_t)sprintf(buf, "session_id\titem_id\ttimestamp\n");
    int tm[N], pos[N];
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        tm[i] = (int)((x >> 33) % 50); /* many ties */
        pos[i] = i;
        n += (size_t)sprintf(buf + n, "L\ti%d\t%d\n", i, tm[i]);
    }
    p = put("long.tsv", buf, n);
    free(buf);
    for (int i = 1; i < N; i++) { /* reference stable sort */
        int t = tm[i], q = pos[i], j = i;
        while (j > 0 && tm[j - 1] > t) {
            tm[j] = tm[j - 1];
            pos[j] = pos[j - 1];
            j--;
        }
        tm[j] = t;
        pos[j] = q;
    }
    d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        int ok = rr_dataset_n_events(d) == N;
        for (int i = 0; ok && i < N; i++) {
            char want[16];
            sprintf(want, "i%d", pos[i]);
            ok = d->s.times[i] == tm[i] && ev_item_is(d, i, want);
        }
        CHECK_MSG(ok, "long session not stably sorted by time");
        rr_dataset_free(d);
    }
}

static void test_csv_quotes(void) {
    const char *p = puts_("q.csv",
                          "SessionId,ItemId,Time,extra\n"
                          "\"a,b\",\"say \"\"hi\"\"\",1.5,\"x,y\"\n"
                          "\"a,b\",plain,2,\n"
                          "c,\"\"\"\",3,z\n");
    rr_dataset *d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        CHECK(rr_dataset_n_sessions(d) == 2 && rr_dataset_n_events(d) == 3);
        CHECK(id_is(&d->sessions, d->sess_id[0], "a,b"));
        CHECK(ev_item_is(d, 0, "say \"hi\""));
        CHECK(ev_item_is(d, 1, "plain"));
        CHECK(ev_item_is(d, 2, "\""));
        CHECK(d->s.times[0] == 1.5);
        rr_dataset_free(d);
    }
    p = puts_("q2.csv", "session_id,item_id,timestamp\n1,\"ab\"c,3\n");
    EXPECT(p, NULL, RR_ERR_PARSE, "q2.csv:2:7: expected a separator after the closing quote, found 'c'");
    p = puts_("q3.csv", "session_id,item_id,timestamp\n1,2,3\n1,\"ab,3\n");
    EXPECT(p, NULL, RR_ERR_PARSE, "q3.csv:3:3: expected a closing quote");
    p = puts_("q4.csv", "session_id,item_id,timestamp\n1,\"\",3\n");
    EXPECT(p, NULL, RR_ERR_PARSE, "q4.csv:2:4: expected an item id, found an empty field");
}

static void test_headers(void) {
    /* RecBole atomic header, extra columns, tab by extension */
    const char *p = puts_("ml.inter",
                          "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                          "196\t242\t3\t881250949\n"
                          "186\t302\t3\t891717742\n"
                          "196\t377\t1\t878887116\n");
    rr_dataset *d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        CHECK(rr_dataset_n_sessions(d) == 2 && rr_dataset_n_items(d) == 3);
        CHECK(ev_item_is(d, 0, "377") && ev_item_is(d, 1, "242")); /* time order */
        CHECK(d->s.times[0] == 878887116.0);
        rr_dataset_free(d);
    }
    /* session_id wins over user_id; names case-insensitive */
    p = puts_("both.csv", "USER_ID,Session_Id,item,TS\nu1,s1,i1,1\nu1,s2,i2,2\n");
    d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        CHECK(rr_dataset_n_sessions(d) == 2);
        CHECK(id_is(&d->sessions, d->sess_id[1], "s2"));
        rr_dataset_free(d);
    }
    /* explicit columns (also by the part before ':') */
    rr_read_opts o;
    rr_read_opts_default(&o);
    o.session_col = "visitor";
    o.item_col = "product";
    o.time_col = "when";
    p = puts_("cols.tsv", "x\twhen:float\tproduct\tvisitor\ty\n"
                          "0\t7\tP1\tV1\t0\n"
                          "0\t8\tP2\tV1\t0\n");
    d = EXPECT(p, &o, RR_OK, NULL);
    if (d) {
        CHECK(rr_dataset_n_sessions(d) == 1 && rr_dataset_n_events(d) == 2);
        CHECK(id_is(&d->sessions, 0, "V1") && ev_item_is(d, 1, "P2") && d->s.times[1] == 8);
        rr_dataset_free(d);
    }
    o.item_col = "nope";
    EXPECT(p, &o, RR_ERR_PARSE, "cols.tsv:1:1: expected an item column ('nope'), found header");
    /* missing default column */
    p = puts_("miss.tsv", "session_id\ttimestamp\n1\t2\n");
    EXPECT(p, NULL, RR_ERR_PARSE, "miss.tsv:1:1: expected an item column (item_id, ItemId, item)");
    p = puts_("notime.tsv", "session_id\titem_id\n1\ta\n1\tb\n2\ta\n");
    EXPECT(p, NULL, RR_ERR_PARSE, "notime.tsv:1:1: expected a time column");
    rr_read_opts_default(&o);
    o.require_time = 0;
    d = EXPECT(p, &o, RR_OK, NULL);
    if (d) { /* file order as time */
        CHECK(d->s.times[0] == 0 && d->s.times[1] == 1 && d->s.times[2] == 2);
        rr_dataset_free(d);
    }
    /* separator sniffed when the name's separator is absent from the header */
    p = puts_("semi.csv", "session_id;item_id;timestamp\n1;a;1\n1;b;2\n");
    d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        CHECK(rr_dataset_n_events(d) == 2 && ev_item_is(d, 1, "b"));
        rr_dataset_free(d);
    }
    /* explicit separator is not second-guessed */
    rr_read_opts_default(&o);
    o.sep = ',';
    EXPECT(p, &o, RR_ERR_PARSE, "semi.csv:1:1: expected a session column");
}

static void test_line_ends(void) {
    const char *p = puts_("crlf.tsv", "\xef\xbb\xbfsession_id\titem_id\ttimestamp\r\n"
                                      "1\ta\t1\r\n"
                                      "\r\n"
                                      "1\tb\t2\r\n"
                                      "2\tc\t3"); /* no final newline */
    rr_dataset *d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        CHECK(rr_dataset_n_events(d) == 3 && rr_dataset_n_sessions(d) == 2);
        CHECK(ev_item_is(d, 1, "b") && ev_item_is(d, 2, "c"));
        CHECK(d->s.times[2] == 3);
        rr_dataset_free(d);
    }
}

static void test_bad_input(void) {
    const char *h = "session_id\titem_id\ttimestamp\n";
    char buf[1024];
    EXPECT(put("empty.tsv", "", 0), NULL, RR_ERR_EMPTY, "empty.tsv: empty file: expected a header row");
    EXPECT(puts_("blank.tsv", "\n\r\n\n"), NULL, RR_ERR_EMPTY, "empty file");
    EXPECT(puts_("hdr.tsv", h), NULL, RR_ERR_EMPTY, "hdr.tsv: no data rows after the header");
    snprintf(buf, sizeof buf, "%s\n\n", h);
    EXPECT(puts_("hdr2.tsv", buf), NULL, RR_ERR_EMPTY, "no data rows");
    /* NUL byte at line 3, column 5 */
    static const char nul[] = "session_id\titem_id\ttimestamp\n1\ta\t1\n2\tb\0c\t2\n";
    EXPECT(put("nul.tsv", nul, sizeof nul - 1), NULL, RR_ERR_PARSE,
           "nul.tsv:3:4: expected text, found a NUL byte");
    snprintf(buf, sizeof buf, "%s1\ta\t1\n2\tb\n", h);
    EXPECT(puts_("cols2.tsv", buf), NULL, RR_ERR_PARSE, "cols2.tsv:3:1: expected 3 fields, found 2");
    snprintf(buf, sizeof buf, "%s1\ta\t1\t9\n", h);
    EXPECT(puts_("cols4.tsv", buf), NULL, RR_ERR_PARSE, "cols4.tsv:2:1: expected 3 fields, found 4");
    snprintf(buf, sizeof buf, "%s1\ta\t1\t\n", h); /* trailing separator = one more field */
    EXPECT(puts_("trail.tsv", buf), NULL, RR_ERR_PARSE, "trail.tsv:2:1: expected 3 fields, found 4");
    snprintf(buf, sizeof buf, "%s1\ta\tabc\n", h);
    EXPECT(puts_("num.tsv", buf), NULL, RR_ERR_PARSE, "num.tsv:2:5: expected a number, found 'abc'");
    snprintf(buf, sizeof buf, "%s1\ta\tinf\n", h);
    EXPECT(puts_("inf.tsv", buf), NULL, RR_ERR_PARSE, "inf.tsv:2:5: expected a number, found 'inf'");
    snprintf(buf, sizeof buf, "%s1\ta\t1e999\n", h);
    EXPECT(puts_("big.tsv", buf), NULL, RR_ERR_PARSE,
           "big.tsv:2:5: expected a finite number, found '1e999'");
    snprintf(buf, sizeof buf, "%s1\ta\t\n", h);
    EXPECT(puts_("notm.tsv", buf), NULL, RR_ERR_PARSE, "notm.tsv:2:5: expected a number, found ''");
    snprintf(buf, sizeof buf, "%s\ta\t1\n", h);
    EXPECT(puts_("nosess.tsv", buf), NULL, RR_ERR_PARSE,
           "nosess.tsv:2:1: expected a session id, found an empty field");
    /* id of 300 bytes */
    char *longid = malloc(2000);
    int n = snprintf(longid, 2000, "%s1\t", h);
    memset(longid + n, 'x', 300);
    n += 300;
    n += snprintf(longid + n, 2000 - (size_t)n, "\t5\n");
    EXPECT(put("longid.tsv", longid, (size_t)n), NULL, RR_ERR_PARSE,
           "longid.tsv:2:3: expected an item id of at most 255 bytes, found 300 bytes");
    /* exactly 255 is fine */
    n = snprintf(longid, 2000, "%s", h);
    memset(longid + n, 's', 255);
    n += 255;
    n += snprintf(longid + n, 2000 - (size_t)n, "\ti\t5\n");
    rr_dataset *d = EXPECT(put("id255.tsv", longid, (size_t)n), NULL, RR_OK, NULL);
    rr_dataset_free(d);
    free(longid);
    /* a line over 1 MiB */
    size_t big = ((size_t)1 << 20) + 100;
    char *huge = malloc(big + 200);
    n = snprintf(huge, 200, "%s1\ta\t1\n", h);
    memset(huge + n, '7', big);
    size_t hl = (size_t)n + big;
    huge[hl++] = '\n';
    EXPECT(put("huge.tsv", huge, hl), NULL, RR_ERR_PARSE,
           "huge.tsv:3:1: expected a line of at most 1048576 bytes");
    free(huge);
    /* missing / unreadable */
    EXPECT(path_of("does-not-exist.tsv"), NULL, RR_ERR_IO, "cannot open");
    EXPECT(tmpdir, NULL, RR_ERR_IO, "read failed");
}

static void test_bad_rows(void) {
    const char *p = puts_("badrows.tsv", "session_id\titem_id\ttimestamp\n"
                                         "1\ta\t1\n"
                                         "1\tb\tx\n"
                                         "1\tc\n"
                                         "2\td\t4\n");
    EXPECT(p, NULL, RR_ERR_PARSE, "badrows.tsv:3:5: expected a number, found 'x'");
    rr_read_opts o;
    rr_read_opts_default(&o);
    o.max_bad_rows = 1;
    EXPECT(p, &o, RR_ERR_PARSE, "badrows.tsv:4:1: expected 3 fields, found 2");
    o.max_bad_rows = 2;
    rr_dataset *d = EXPECT(p, &o, RR_OK, NULL);
    if (d) {
        CHECK(rr_dataset_n_bad_rows(d) == 2);
        CHECK(rr_dataset_n_events(d) == 2 && rr_dataset_n_sessions(d) == 2);
        rr_dataset_free(d);
    }
}

static void test_numbers(void) {
    const char *p = puts_("dec.tsv", "session_id\titem_id\ttimestamp\n"
                                     "1\ta\t1396314146.123\n"
                                     "1\tb\t 1.5e3 \n"
                                     "1\tc\t-2.25\n"
                                     "1\td\t+7\n"
                                     "1\te\t0.1\n"
                                     "1\tf\t12345678901234567890.5\n"
                                     "1\tg\t.5\n");
    rr_dataset *d = EXPECT(p, NULL, RR_OK, NULL);
    if (d) {
        /* sorted by time: c(-2.25) e(0.1) g(.5) d(7) b(1500) a f */
        CHECK(d->s.times[0] == -2.25 && ev_item_is(d, 0, "c"));
        CHECK(d->s.times[1] == strtod("0.1", NULL));
        CHECK(d->s.times[2] == 0.5);
        CHECK(d->s.times[3] == 7 && d->s.times[4] == 1500);
        CHECK(d->s.times[5] == strtod("1396314146.123", NULL));
        CHECK(d->s.times[6] == strtod("12345678901234567890.5", NULL));
        /* write -> read is the identity, decimals printed exactly */
        const char *w = path_of("dec_out.tsv");
        rr_error err;
        CHECK_OK(rr_dataset_write_tsv(d, w, &err), &err);
        rr_dataset *d2 = EXPECT(w, NULL, RR_OK, NULL);
        if (d2) {
            int ok = d2->s.n_events == d->s.n_events;
            for (size_t e = 0; ok && e < d->s.n_events; e++) {
                size_t l1, l2;
                const char *a = rr_vocab_id(&d->items, d->s.items[e], &l1);
                const char *b = rr_vocab_id(&d2->items, d2->s.items[e], &l2);
                ok = d2->s.times[e] == d->s.times[e] && l1 == l2 && !memcmp(a, b, l1);
            }
            CHECK_MSG(ok, "write/read round trip differs");
            rr_dataset_free(d2);
        }
        char *text = NULL;
        size_t tl;
        if (rr_read_file(w, 0, &text, &tl, &err) == RR_OK) {
            CHECK(strstr(text, "1\ta\t1396314146.123\n") != NULL);
            CHECK(strstr(text, "1\tb\t1500\n") != NULL);
            CHECK(strstr(text, "1\te\t0.1\n") != NULL);
            CHECK(strstr(text, "1\tc\t-2.25\n") != NULL);
            CHECK(strncmp(text, "session_id\titem_id\ttimestamp\n", 29) == 0);
            free(text);
        } else CHECK(0);
        rr_dataset_free(d);
    }
}

/* Builds a TSV of n rows (sessions of 1..7 events, some out of order) */
static char *make_tsv(size_t rows, size_t *len) {
    size_t cap = rows * 40 + 64;
    char *b = malloc(cap);
    size_t n = (size_t)sprintf(b, "session_id\titem_id\ttimestamp\n");
    uint64_t x = 99;
    size_t sess = 0, left = 0;
    for (size_t r = 0; r < rows; r++) {
        if (!left) {
            sess++;
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            left = 1 + (size_t)((x >> 40) % 7);
        }
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned item = (unsigned)((x >> 33) % 5000);
        long t = (long)(1000000 + sess * 100 + (left * 7) % 11);
        n += (size_t)sprintf(b + n, "S%zu\titem%u\t%ld\n", sess, item, t);
        left--;
    }
    *len = n;
    return b;
}

/* Same sessions, events, times and item ids (item indices may differ). */
static int same_dataset(const rr_dataset *a, const rr_dataset *b) {
    if (a->s.n_events != b->s.n_events || a->s.n_sessions != b->s.n_sessions ||
        a->items.n != b->items.n)
        return 0;
    for (size_t i = 0; i <= a->s.n_sessions; i++)
        if (a->s.offsets[i] != b->s.offsets[i]) return 0;
    for (size_t e = 0; e < a->s.n_events; e++) {
        size_t l1, l2;
        const char *p = rr_vocab_id(&a->items, a->s.items[e], &l1);
        const char *q = rr_vocab_id(&b->items, b->s.items[e], &l2);
        if (l1 != l2 || memcmp(p, q, l1) || a->s.times[e] != b->s.times[e]) return 0;
    }
    return 1;
}

static void test_gzip_and_chunks(void) {
    /* big enough to cross several 4 MiB refills */
    size_t rows = check_small() ? 60000 : 400000, len;
    char *tsv = make_tsv(rows, &len);
    const char *plain = put("big.tsv", tsv, len);
    rr_dataset *d = EXPECT(plain, NULL, RR_OK, NULL);
    if (d) CHECK(rr_dataset_n_events(d) == rows);
    size_t gl;
    unsigned char *gz = gzip_of(tsv, len, 3, &gl);
    /* gzip by magic, not by name; three concatenated members */
    const char *gzp = put("big-gz-without-suffix.tsv", gz, gl);
    rr_dataset *g = EXPECT(gzp, NULL, RR_OK, NULL);
    if (d && g) CHECK_MSG(same_dataset(d, g), "gzip (3 members) read differs from plain");
    rr_dataset_free(g);
    /* truncated: cut inside the last member */
    const char *tr = put("trunc.tsv.gz", gz, gl - 20);
    EXPECT(tr, NULL, RR_ERR_FORMAT, "trunc.tsv.gz: truncated gzip data");
    /* cut exactly at a member boundary is not detectable; cut in a header */
    unsigned char *bad = malloc(gl);
    memcpy(bad, gz, gl);
    bad[gl / 2] ^= 0x55;
    bad[gl / 2 + 1] ^= 0xaa;
    const char *co = put("corrupt.tsv.gz", bad, gl);
    EXPECT(co, NULL, RR_ERR_FORMAT, "corrupt.tsv.gz: corrupt gzip data");
    /* a bad CRC only: flip a bit in the first member's trailer */
    size_t one_len;
    unsigned char *one = gzip_of(tsv, 4096, 1, &one_len);
    one[one_len - 6] ^= 1;
    EXPECT(put("crc.tsv.gz", one, one_len), NULL, RR_ERR_FORMAT, "corrupt gzip data");
    free(one);
    /* garbage after a member */
    free(bad);
    unsigned char *trail = malloc(gl + 8);
    memcpy(trail, gz, gl);
    memcpy(trail + gl, "garbage!", 8);
    EXPECT(put("trail.tsv.gz", trail, gl + 8), NULL, RR_ERR_FORMAT, "corrupt gzip data");
    free(trail);
    /* only a gzip magic */
    EXPECT(put("magic.gz", "\x1f\x8b", 2), NULL, RR_ERR_FORMAT, "truncated gzip data");
    free(gz);
    free(tsv);
    rr_dataset_free(d);
}

static void test_roundtrip_synthlike(void) {
    size_t len;
    char *tsv = make_tsv(5000, &len);
    const char *p = put("rt.tsv", tsv, len);
    free(tsv);
    rr_dataset *a = EXPECT(p, NULL, RR_OK, NULL);
    if (!a) return;
    rr_error err;
    const char *w = path_of("rt_out.tsv");
    CHECK_OK(rr_dataset_write_tsv(a, w, &err), &err);
    rr_dataset *b = EXPECT(w, NULL, RR_OK, NULL);
    if (b) {
        CHECK(same_dataset(a, b));
        for (size_t s = 0; s < a->s.n_sessions; s++) {
            size_t l1, l2;
            const char *x = rr_vocab_id(&a->sessions, a->sess_id[s], &l1);
            const char *y = rr_vocab_id(&b->sessions, b->sess_id[s], &l2);
            if (l1 != l2 || memcmp(x, y, l1)) {
                CHECK_MSG(0, "session %zu id differs", s);
                break;
            }
        }
        rr_dataset_free(b);
    }
    rr_dataset_free(a);
}

static void shared(const char *rel, rr_read_opts *o, size_t ev, size_t ns, size_t ni) {
    const char *root = getenv("RR_SHARED_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root ? root : "../shared/data", rel);
    if (access(path, R_OK) != 0) {
        printf("SKIP: %s not found (set RR_SHARED_DATA)\n", path);
        return;
    }
    double t0 = rr_now();
    rr_dataset *d = expect(path, o, RR_OK, NULL, __LINE__);
    if (!d) return;
    CHECK_MSG(rr_dataset_n_events(d) == ev, "%s: %zu events, want %zu", rel, rr_dataset_n_events(d), ev);
    CHECK_MSG(rr_dataset_n_sessions(d) == ns, "%s: %zu sessions, want %zu", rel,
              rr_dataset_n_sessions(d), ns);
    CHECK_MSG(rr_dataset_n_items(d) == ni, "%s: %zu items, want %zu", rel, rr_dataset_n_items(d), ni);
    /* sorted within sessions */
    int sorted = 1;
    for (size_t s = 0; sorted && s < d->s.n_sessions; s++)
        for (int64_t e = d->s.offsets[s] + 1; e < d->s.offsets[s + 1]; e++)
            if (d->s.times[e] < d->s.times[e - 1]) sorted = 0;
    CHECK(sorted);
    printf("%s: %zu events, %zu sessions, %zu items in %.3f s\n", rel, ev, ns, ni, rr_now() - t0);
    rr_dataset_free(d);
}

static void test_shared(void) {
    shared("yoochoose-100k/events.tsv", NULL, 83846, 21210, 2933);
    /* the original files: header SessionId ItemId Time, decimal times */
    shared("yoochoose-100k/yoochoose-clicks-100k_train_full.txt", NULL, 70278, 17794, 2933);
    shared("yoochoose-100k/yoochoose-clicks-100k_test.txt", NULL, 13568, 3416, 1771);
    shared("ml-100k/ml-100k.inter", NULL, 100000, 943, 1682); /* RecBole header, random order */
    shared("amazon-beauty/events.tsv", NULL, 198502, 22363, 12101);
    if (!check_small()) shared("diginetica-srgnn/events.tsv.gz", NULL, 982961, 202633, 43097);
}

/* Random mutations of a valid file (and of its gzip): the reader must
 * return a status, never crash (run under ASan in `make test`). */
static void test_mutations(void) {
    static const char base[] = "session_id,item_id,timestamp,x\n"
                               "1,a,1,\"q\"\n2,\"b,c\",2.5,\n1,d,3,z\r\n3,e,1e2,w\n";
    size_t n = sizeof base - 1;
    char buf[256];
    uint64_t x = 777;
    int n_cases = check_small() ? 300 : 2000, odd = 0;
    for (int c = 0; c < n_cases; c++) {
        memcpy(buf, base, n);
        size_t len = n;
        int muts = 1 + c % 4;
        for (int m = 0; m < muts; m++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(x >> 33) % len;
            static const char pick[] = {'"', ',', '\n', '\r', '\0', '\t', '9', '.', 'e', '\xff'};
            buf[pos] = pick[(x >> 20) % sizeof pick];
            if ((x >> 50) % 5 == 0 && len > 10) len -= (size_t)((x >> 40) % 8); /* truncate */
        }
        const char *p = put("mut.csv", buf, len);
        rr_error err;
        rr_dataset *d = NULL;
        rr_status st = rr_dataset_read(p, NULL, &d, &err);
        if (!(st == RR_OK || st == RR_ERR_PARSE || st == RR_ERR_EMPTY)) odd++;
        if (st == RR_OK && (!d || d->s.n_events == 0)) odd++;
        if (st != RR_OK && d) odd++;
        rr_dataset_free(d);
        if (c % 4 == 0) { /* also as gzip, with a damaged byte */
            size_t gl;
            unsigned char *gz = gzip_of(buf, len, 1, &gl);
            gz[10 + (x >> 30) % (gl - 10)] ^= (unsigned char)(1 + (x >> 12) % 255);
            st = rr_dataset_read(put("mut.csv.gz", gz, gl), NULL, &d, &err);
            if (!(st == RR_OK || st == RR_ERR_PARSE || st == RR_ERR_EMPTY || st == RR_ERR_FORMAT)) odd++;
            rr_dataset_free(d);
            free(gz);
        }
    }
    CHECK_MSG(odd == 0, "%d mutated inputs gave an unexpected status", odd);
}

int main(void) {
    strcpy(tmpdir, "/tmp/rr_test_reader_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_basic();
    test_order();
    test_csv_quotes();
    test_headers();
    test_line_ends();
    test_bad_input();
    test_bad_rows();
    test_numbers();
    test_gzip_and_chunks();
    test_roundtrip_synthlike();
    test_mutations();
    test_shared();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary("test_reader");
}
