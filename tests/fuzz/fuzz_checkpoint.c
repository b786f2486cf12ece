/* tests/fuzz/fuzz_checkpoint.c: the checkpoint reader (host/train/checkpoint.c).
 *
 * Input: one option byte, then a checkpoint file. Option bits:
 *   0 fix up the length field and the CRC trailer before reading (the file then passes
 *     the checksum: this is what a crafted or buggy-writer file looks like, and it lets
 *     the fuzzer reach the section table behind the CRC)
 *   1 read it as RUN/checkpoint.last through ckpt_load_latest (else ckpt_read of a file)
 *   2 expect config hash 0x1234 (a foreign config must be refused, never read)
 * Invariants: refusals carry a message; a file that is read has every section inside the
 * payload (before the trailer), NUL-terminated names that ckpt_find finds; writing its
 * sections back with ckpt_write gives a file that reads back to the same sections. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core.h"
#include "fuzz.h"
#include "train/checkpoint.h"

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet++)
        fuzz_quiet();
    if (size < 1)
        return 0;
    unsigned op = data[0];
    size_t n = size - 1;
    unsigned char *b = malloc(n ? n : 1);
    if (!b)
        fuzz_fail("out of memory");
    memcpy(b, data + 1, n);
    if ((op & 1) && n >= 40) {
        put_u64(b + 24, n);
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, b, (uInt)(n - 8));
        for (int i = 0; i < 4; i++)
            b[n - 8 + i] = (unsigned char)(crc >> (8 * i));
        memcpy(b + n - 4, "END!", 4);
    }
    uint64_t expect = op & 4 ? 0x1234 : 0;
    char err[1200] = "", warn[1200] = "";
    ckpt c;
    int rc;
    fuzz_unlink(CKPT_LAST);
    fuzz_unlink(CKPT_PREV);
    if (op & 2) {
        fuzz_file(CKPT_LAST, b, n);
        const char *which = NULL;
        rc = ckpt_load_latest(fuzz_dir(), expect, &c, &which, warn, sizeof warn, err,
                              sizeof err);
        if (rc == EQM_OK && (!which || strcmp(which, CKPT_LAST)))
            fuzz_fail("ckpt_load_latest read '%s' instead of %s", which ? which : "?",
                      CKPT_LAST);
    } else {
        const char *path = fuzz_file("input.ckpt", b, n);
        rc = ckpt_read(path, expect, &c, err, sizeof err);
    }
    free(b);
    if (rc) {
        if (!err[0])
            fuzz_fail("checkpoint refused (%d) without a message", rc);
        return 0;
    }
    if (expect && c.config_hash != expect)
        fuzz_fail("a checkpoint of config hash %016llx was read for hash %016llx",
                  (unsigned long long)c.config_hash, (unsigned long long)expect);
    const unsigned char *lo = c.blob, *hi = lo + c.blob_bytes - 8;
    volatile unsigned sum = 0;
    for (int i = 0; i < c.n_sections; i++) {
        const ckpt_section *s = &c.sec[i];
        const unsigned char *p = s->data;
        if (!memchr(s->name, 0, CKPT_NAME_MAX))
            fuzz_fail("section %d: name not NUL-terminated", i);
        if (p < lo || p > hi || s->bytes > (uint64_t)(hi - p))
            fuzz_fail("section %d (%s): %llu bytes at offset %lld, outside the %zu-byte "
                      "payload", i, s->name, (unsigned long long)s->bytes,
                      (long long)(p - lo), c.blob_bytes);
        for (uint64_t k = 0; k < s->bytes; k++)
            sum += p[k];
        const ckpt_section *f = ckpt_find(&c, s->name);
        if (!f || strcmp(f->name, s->name))
            fuzz_fail("ckpt_find(%s) does not find the section", s->name);
    }
    /* write the sections back (empty names cannot be written: skip such files) */
    int writable = 1;
    for (int i = 0; i < c.n_sections; i++)
        if (!c.sec[i].name[0])
            writable = 0;
    if (writable) {
        char path[700];
        snprintf(path, sizeof path, "%s/rewritten.ckpt", fuzz_dir());
        if (ckpt_write(path, c.config_hash, c.sec, c.n_sections, err, sizeof err))
            fuzz_fail("ckpt_write of a checkpoint just read: %s", err);
        ckpt c2;
        if (ckpt_read(path, c.config_hash, &c2, err, sizeof err))
            fuzz_fail("a rewritten checkpoint does not read: %s", err);
        if (c2.n_sections != c.n_sections)
            fuzz_fail("rewritten checkpoint: %d sections, had %d", c2.n_sections, c.n_sections);
        for (int i = 0; i < c.n_sections; i++)
            if (strcmp(c2.sec[i].name, c.sec[i].name) || c2.sec[i].bytes != c.sec[i].bytes ||
                memcmp(c2.sec[i].data, c.sec[i].data, (size_t)c.sec[i].bytes))
                fuzz_fail("rewritten checkpoint: section %d differs", i);
        ckpt_free(&c2);
    }
    ckpt_free(&c);
    return 0;
}
