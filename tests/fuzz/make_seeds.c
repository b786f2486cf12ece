/* tests/fuzz/make_seeds.c: writes the checkpoint and safetensors seeds of tests/fuzz/corpus
 * with the real writers (ckpt_write, st_writer), laid out as the trainer and `equimod
 * export` lay them out, at a size a fuzzer can mutate (a real ResNet checkpoint is
 * megabytes). Built on demand: make tests/fuzz/make_seeds; run
 *   tests/fuzz/make_seeds OUTDIR CONFIG.ini
 * which writes the files of OUTDIR/checkpoint/ and OUTDIR/safetensors/ (each checkpoint seed starts
 * with the harness's option byte, see fuzz_checkpoint.c). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b)
        b[sz] = 0;
    *n = (size_t)sz;
    return b;
}

/* OUT = option byte + the file at tmp */
static int prefixed(const char *tmp, const char *out, unsigned char op)
{
    size_t n;
    unsigned char *b = slurp(tmp, &n);
    FILE *f = fopen(out, "wb");
    if (!b || !f)
        return -1;
    fputc(op, f);
    fwrite(b, 1, n, f);
    free(b);
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds OUTDIR CONFIG.ini\n");
        return 2;
    }
    char err[1024], p[4096], tmp[4096];
    size_t cfg_n;
    unsigned char *cfg = slurp(argv[2], &cfg_n);
    if (!cfg) {
        fprintf(stderr, "%s: cannot read\n", argv[2]);
        return 1;
    }
    /* a trainer-style checkpoint: config, tensors, params, target, optim, state */
    static const char tensors[] = "0 0 0 27 1 conv1.weight\n0 1 32 3 1 bn1.weight\n"
                                  "0 2 48 3 1 bn1.bias\n0 3 64 3 2 bn1.running_mean\n"
                                  "0 4 80 3 2 bn1.running_var\n1 0 96 6 1 proj.0.weight\n";
    float params[102], optim[102];
    for (int i = 0; i < 102; i++) {
        params[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
        optim[i] = (float)i * 1e-3f;
    }
    int64_t state[8] = {12, 3, 1, 12, 0, 0, 0, 0}; /* step, epoch, batch, optim steps... */
    ckpt_section s[6];
    memset(s, 0, sizeof s);
    snprintf(s[0].name, CKPT_NAME_MAX, "config");
    s[0].data = cfg, s[0].bytes = cfg_n;
    snprintf(s[1].name, CKPT_NAME_MAX, "tensors");
    s[1].data = tensors, s[1].bytes = strlen(tensors);
    snprintf(s[2].name, CKPT_NAME_MAX, "params");
    s[2].data = params, s[2].bytes = sizeof params;
    snprintf(s[3].name, CKPT_NAME_MAX, "target");
    s[3].data = params, s[3].bytes = sizeof params;
    snprintf(s[4].name, CKPT_NAME_MAX, "optim");
    s[4].data = optim, s[4].bytes = sizeof optim;
    snprintf(s[5].name, CKPT_NAME_MAX, "state");
    s[5].data = state, s[5].bytes = sizeof state;
    uint64_t hash = ckpt_hash(CKPT_HASH_INIT, cfg, cfg_n);
    snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", argv[1]);
    if (ckpt_write(tmp, hash, s, 6, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    static const unsigned char ops[4] = {0, 1, 2, 4};
    static const char *const what[4] = {"read", "fixup", "latest", "foreign"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/checkpoint/trainer-layout-%s", argv[1], what[i]);
        if (prefixed(tmp, p, ops[i]))
            return 1;
    }
    /* an empty checkpoint (no sections) */
    if (ckpt_write(tmp, 0, NULL, 0, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    snprintf(p, sizeof p, "%s/checkpoint/empty", argv[1]);
    if (prefixed(tmp, p, 0))
        return 1;
    remove(tmp);

    /* safetensors as `equimod export` writes them: F32 weights, I64 num_batches_tracked */
    st_writer *w = st_writer_create();
    int64_t sh4[4] = {3, 3, 1, 1}, sh1[1] = {3}, sh2[2] = {2, 3};
    int64_t nbt = 12;
    double d[2] = {0.25, -1.5};
    unsigned char u8[4] = {1, 2, 3, 250};
    uint16_t bf[2] = {0x3f80, 0xc000};
    if (!w || st_writer_add(w, "conv1.weight", "F32", 4, sh4, params, err, sizeof err) ||
        st_writer_add(w, "bn1.weight", "F32", 1, sh1, params + 9, err, sizeof err) ||
        st_writer_add(w, "bn1.num_batches_tracked", "I64", 0, NULL, &nbt, err, sizeof err) ||
        st_writer_add(w, "fc.weight", "F32", 2, sh2, params + 12, err, sizeof err) ||
        st_writer_meta(w, "format", "pt")) {
        fprintf(stderr, "safetensors: %s\n", err);
        return 1;
    }
    snprintf(p, sizeof p, "%s/safetensors/export-layout.safetensors", argv[1]);
    if (st_writer_write(w, p, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    st_writer_destroy(w);
    int64_t sh_d[1] = {2}, sh_u[2] = {2, 2}, sh_b[2] = {1, 2};
    w = st_writer_create();
    if (!w || st_writer_add(w, "a.f64", "F64", 1, sh_d, d, err, sizeof err) ||
        st_writer_add(w, "b.u8", "U8", 2, sh_u, u8, err, sizeof err) ||
        st_writer_add(w, "c.bf16", "BF16", 2, sh_b, bf, err, sizeof err) ||
        st_writer_meta(w, "note", "dtypes")) {
        fprintf(stderr, "safetensors: %s\n", err);
        return 1;
    }
    snprintf(p, sizeof p, "%s/safetensors/dtypes.safetensors", argv[1]);
    if (st_writer_write(w, p, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    st_writer_destroy(w);
    free(cfg);
    return 0;
}
