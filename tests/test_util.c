/* test_util.c - RNG, hashing, CRC-32C, checked sizes, vocabulary, atomic writes. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/vocab.h"
#include "util/util.h"

static rr_status write_hello(FILE *f, void *user, rr_error *err) {
    (void)err;
    fputs((const char *)user, f);
    return RR_OK;
}

static rr_status write_fail(FILE *f, void *user, rr_error *err) {
    (void)user;
    fputs("partial", f);
    return rr_err(err, RR_ERR_IO, "simulated failure");
}

int main(void) {
    /* CRC-32C check value from RFC 3720 / iSCSI: "123456789" -> e3069283. */
    CHECK(rr_crc32c(0, "123456789", 9) == 0xe3069283u);
    /* Incremental equals one-shot. */
    CHECK(rr_crc32c(rr_crc32c(0, "12345", 5), "6789", 4) == 0xe3069283u);
    /* 32 zero bytes: 8a9136aa (RFC 3720 B.4). */
    unsigned char z[32] = {0};
    CHECK(rr_crc32c(0, z, 32) == 0x8a9136aau);

    size_t out = 0;
    CHECK(!rr_mul_size(SIZE_MAX / 2 + 1, 2, &out));
    CHECK(rr_mul_size(1000, 1000, &out) && out == 1000000);
    CHECK(!rr_add_size(SIZE_MAX, 1, &out));

    rr_rng a, b;
    rr_rng_seed(&a, 42);
    rr_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= rr_rng_next(&a) == rr_rng_next(&b);
    CHECK(same);
    double sum = 0;
    size_t hist[10] = {0};
    for (int i = 0; i < 100000; i++) {
        double u = rr_rng_uniform(&a);
        sum += u;
        hist[rr_rng_below(&a, 10)]++;
    }
    CHECK_NEAR(sum / 100000, 0.5, 0.01);
    for (int i = 0; i < 10; i++) CHECK(hist[i] > 9500 && hist[i] < 10500);

    rr_vocab v;
    rr_vocab_init(&v);
    rr_error err;
    char buf[32];
    int ok = 1;
    for (int i = 0; i < 50000; i++) {
        int n = snprintf(buf, sizeof buf, "item-%d", i);
        int32_t idx;
        ok &= rr_vocab_add(&v, buf, (size_t)n, &idx, &err) == RR_OK && idx == i;
    }
    CHECK(ok);
    CHECK(v.n == 50000);
    for (int i = 0; i < 50000; i += 997) {
        int n = snprintf(buf, sizeof buf, "item-%d", i);
        CHECK(rr_vocab_find(&v, buf, (size_t)n) == i);
        size_t len;
        const char *id = rr_vocab_id(&v, i, &len);
        CHECK(len == (size_t)n && !memcmp(id, buf, len));
    }
    CHECK(rr_vocab_find(&v, "nope", 4) == -1);
    int32_t idx;
    CHECK(rr_vocab_add(&v, "item-7", 6, &idx, &err) == RR_OK && idx == 7);
    char longid[300];
    memset(longid, 'x', sizeof longid);
    CHECK(rr_vocab_add(&v, longid, 256, &idx, &err) == RR_ERR_RANGE);
    CHECK(rr_vocab_add(&v, "", 0, &idx, &err) == RR_OK && rr_vocab_find(&v, "", 0) == idx);
    rr_vocab c;
    CHECK_OK(rr_vocab_copy(&c, &v, &err), &err);
    CHECK(c.n == v.n && rr_vocab_find(&c, "item-49999", 10) == 49999);
    rr_vocab_clear(&c);
    rr_vocab_clear(&v);

    char path[] = "/tmp/rr_test_util_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(rr_write_atomic(path, write_hello, "hello", &err), &err);
    CHECK(rr_write_atomic(path, write_fail, NULL, &err) == RR_ERR_IO);
    char *data;
    size_t len;
    CHECK_OK(rr_read_file(path, 0, &data, &len, &err), &err);
    CHECK(len == 5 && !memcmp(data, "hello", 5)); /* old content intact */
    free(data);
    unlink(path);
    return check_summary("test_util");
}
