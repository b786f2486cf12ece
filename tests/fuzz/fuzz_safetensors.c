/* tests/fuzz/fuzz_safetensors.c: the .safetensors reader (host/train/safetensors.c).
 *
 * Input: a .safetensors file, read with st_read.
 * Invariants: refusals carry a message; in a file that is read every tensor has a known
 * dtype, numel = product of its shape, numel * element size bytes inside the file (all
 * read here), st_find finds it by name; F32/F64 tensors convert with st_to_f32 or are
 * refused as malformed with a message (NaN, infinite, beyond float range); writing
 * the tensors back with st_writer gives a file that reads back to the same tensors. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fuzz.h"
#include "train/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet++)
        fuzz_quiet();
    char err[1200] = "";
    const char *path = fuzz_file("input.safetensors", data, size);
    st_file *f = NULL;
    int rc = st_read(path, &f, err, sizeof err);
    if (rc) {
        if (!err[0])
            fuzz_fail("st_read refused (%d) without a message", rc);
        if (f)
            fuzz_fail("st_read failed but returned a file");
        return 0;
    }
    volatile unsigned sum = 0;
    int n = st_count(f);
    st_writer *w = st_writer_create();
    if (!w)
        fuzz_fail("out of memory");
    int writable = 1;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        if (!t || !t->name)
            fuzz_fail("tensor %d missing", i);
        size_t es = st_dtype_size(t->dtype);
        if (!es || es != t->elem_size || t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            fuzz_fail("tensor %s: dtype %s, element size %zu, ndim %d", t->name, t->dtype,
                      t->elem_size, t->ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                fuzz_fail("tensor %s: negative dimension", t->name);
            numel *= (size_t)t->shape[d];
        }
        if (numel != t->numel || (numel && t->numel * t->elem_size / numel != t->elem_size) ||
            t->numel * t->elem_size > size)
            fuzz_fail("tensor %s: numel %zu (shape product %zu) of %zu bytes in a %zu-byte file",
                      t->name, t->numel, numel, t->elem_size, size);
        const unsigned char *p = t->data;
        for (size_t k = 0; k < t->numel * t->elem_size; k++)
            sum += p[k];
        const st_tensor *g = st_find(f, t->name);
        if (!g || strcmp(g->name, t->name))
            fuzz_fail("st_find(%s) does not find the tensor", t->name);
        if (!strcmp(t->dtype, "F32") || !strcmp(t->dtype, "F64")) {
            float *v = malloc(t->numel ? t->numel * sizeof(float) : 1);
            if (!v)
                fuzz_fail("out of memory");
            err[0] = 0;
            rc = st_to_f32(t, v, t->numel, err, sizeof err);
            if (rc && ((rc != EQM_ERR_NUMERIC && rc != EQM_ERR_FORMAT) || !err[0]))
                fuzz_fail("st_to_f32(%s): status %d: '%s'", t->name, rc, err);
            free(v);
        }
        if (st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err, sizeof err))
            writable = 0; /* e.g. a name the writer refuses: not the reader's business */
    }
    (void)st_metadata(f, "format");
    if (writable) {
        char out[700];
        snprintf(out, sizeof out, "%s/rewritten.safetensors", fuzz_dir());
        if (st_writer_write(w, out, err, sizeof err))
            fuzz_fail("st_writer_write of a file just read: %s", err);
        st_file *f2 = NULL;
        if (st_read(out, &f2, err, sizeof err))
            fuzz_fail("a rewritten file does not read: %s", err);
        if (st_count(f2) != n)
            fuzz_fail("rewritten file: %d tensors, had %d", st_count(f2), n);
        for (int i = 0; i < n; i++) {
            const st_tensor *a = st_at(f, i), *b = st_find(f2, a->name);
            if (!b || strcmp(a->dtype, b->dtype) || a->ndim != b->ndim || a->numel != b->numel ||
                memcmp(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->ndim) ||
                memcmp(a->data, b->data, a->numel * a->elem_size))
                fuzz_fail("rewritten file: tensor %s differs", a->name);
        }
        st_close(f2);
    }
    st_writer_destroy(w);
    st_close(f);
    return 0;
}
