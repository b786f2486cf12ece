/* host/train/safetensors.c: .safetensors reader and writer (see safetensors.h).
 *
 * The header is JSON parsed with jansson; validation follows the reference implementation:
 * known dtype, non-negative shape, data_offsets within the data region, end - begin =
 * numel * element size, and the tensors cover the data region exactly (no holes/overlap).
 * Left out: memory mapping, big-endian hosts, non-string metadata values.
 */
#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core.h"
#include "fsutil.h"
#include "train/model.h"
#include "train/safetensors.h"

#define ST_MAX_HEADER (100u << 20) /* the reference reader's limit: 100 MB */

struct st_file {
    unsigned char *buf; /* whole file */
    size_t size;
    size_t data_start;
    int n;
    st_tensor *t;       /* sorted by data offset */
    char **names;       /* owned copies */
    int n_meta;
    char **meta_k, **meta_v;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {{"F64", 8}, {"I64", 8}, {"U64", 8}, {"F32", 4}, {"I32", 4}, {"U32", 4},
              {"F16", 2}, {"BF16", 2}, {"I16", 2}, {"U16", 2}, {"I8", 1}, {"U8", 1},
              {"BOOL", 1}};

size_t st_dtype_size(const char *dtype)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dtypes[i].name, dtype))
            return dtypes[i].size;
    return 0;
}

void st_close(st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free(f->names ? f->names[i] : NULL);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_k[i]);
        free(f->meta_v[i]);
    }
    free(f->names);
    free(f->meta_k);
    free(f->meta_v);
    free(f->t);
    free(f->buf);
    free(f);
}

typedef struct span {
    size_t b, e;
    int i;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

static int get_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* Takes ownership of buf (malloc'ed). */
/* __metadata__: an object of strings, kept as (key, value) pairs. */
static int st_read_metadata(st_file *f, json_t *val, const char *what, char *err,
                            size_t errlen)
{
    if (!json_is_object(val))
        return errf(err, errlen, EQM_ERR_FORMAT, "%s: __metadata__ must be an object", what);
    const char *mk;
    json_t *mv;
    json_object_foreach(val, mk, mv) {
        if (!json_is_string(mv))
            return errf(err, errlen, EQM_ERR_FORMAT, "%s: __metadata__.%s must be a string",
                        what, mk);
        f->meta_k[f->n_meta] = strdup(mk);
        f->meta_v[f->n_meta] = strdup(json_string_value(mv));
        if (!f->meta_k[f->n_meta++] || !f->meta_v[f->n_meta - 1])
            return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    }
    return EQM_OK;
}

/* One header entry: dtype, shape and data_offsets checked against the data region
 * (data_size bytes); appended as f->t[f->n], its byte span as sp[f->n]. */
static int st_read_tensor(st_file *f, const char *key, json_t *val, size_t data_size,
                          span *sp, const char *what, char *err, size_t errlen)
{
    const int st = EQM_ERR_FORMAT;
    st_tensor *t = &f->t[f->n];
    json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
           *jo = json_object_get(val, "data_offsets");
    if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) ||
        !json_is_array(jo) || json_array_size(jo) != 2)
        return errf(err, errlen, st,
                    "%s: tensor '%s' needs {\"dtype\": str, \"shape\": [..], "
                    "\"data_offsets\": [begin, end]}",
                    what, key);
    const char *dt = json_string_value(jd);
    t->elem_size = st_dtype_size(dt);
    if (!t->elem_size || strlen(dt) >= sizeof t->dtype)
        return errf(err, errlen, EQM_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown dtype '%s'",
                    what, key, dt);
    snprintf(t->dtype, sizeof t->dtype, "%s", dt);
    if (json_array_size(js) > ST_MAX_DIMS)
        return errf(err, errlen, EQM_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dims (max %d)",
                    what, key, json_array_size(js), ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t v;
        if (!get_u64(json_array_get(js, (size_t)d), &v) || v > (1ull << 40))
            return errf(err, errlen, st, "%s: tensor '%s': shape[%d] is not a valid size",
                        what, key, d);
        t->shape[d] = (int64_t)v;
        if (v && numel > SIZE_MAX / v)
            return errf(err, errlen, st, "%s: tensor '%s': shape overflows", what, key);
        numel *= (size_t)v;
    }
    t->numel = numel;
    uint64_t b, e;
    if (!get_u64(json_array_get(jo, 0), &b) || !get_u64(json_array_get(jo, 1), &e) || b > e ||
        e > data_size)
        return errf(err, errlen, st,
                    "%s: tensor '%s': data_offsets out of the data region (%zu bytes): "
                    "truncated file?",
                    what, key, data_size);
    if (numel > SIZE_MAX / t->elem_size || e - b != numel * t->elem_size)
        return errf(err, errlen, st,
                    "%s: tensor '%s': data_offsets span %llu bytes but shape x dtype needs %zu",
                    what, key, (unsigned long long)(e - b), numel * t->elem_size);
    f->names[f->n] = strdup(key);
    if (!f->names[f->n])
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    t->name = f->names[f->n];
    t->data = f->buf + f->data_start + b;
    sp[f->n] = (span){(size_t)b, (size_t)e, f->n};
    f->n++;
    return EQM_OK;
}

/* The tensors' spans must tile [0, data_size) exactly; the tensors are then kept in data
 * order. */
static int st_check_tiling(st_file *f, span *sp, size_t data_size, const char *what,
                           char *err, size_t errlen)
{
    qsort(sp, (size_t)f->n, sizeof *sp, span_cmp);
    size_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        if (sp[i].b != pos)
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s: tensor '%s' %s at byte %zu of the data region", what,
                        f->t[sp[i].i].name, sp[i].b < pos ? "overlaps another" : "leaves a hole",
                        sp[i].b);
        pos = sp[i].e;
    }
    if (pos != data_size)
        return errf(err, errlen, EQM_ERR_FORMAT, "%s: %zu trailing bytes after the last tensor",
                    what, data_size - pos);
    st_tensor *sorted = calloc(f->n > 0 ? (size_t)f->n : 1u, sizeof *sorted);
    if (!sorted)
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    for (int i = 0; i < f->n; i++)
        sorted[i] = f->t[sp[i].i];
    free(f->t);
    f->t = sorted;
    return EQM_OK;
}

static int st_parse_owned(unsigned char *buf, size_t n, const char *what, st_file **out,
                          char *err, size_t errlen)
{
    int st = EQM_ERR_FORMAT;
    json_t *root = NULL;
    span *sp = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f) {
        free(buf);
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    }
    f->buf = buf;
    f->size = n;
    if (n < 8) {
        errf(err, errlen, st, "%s: not a safetensors file (%zu bytes, need at least 8)", what,
             n);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > ST_MAX_HEADER || hlen > n - 8) {
        errf(err, errlen, st,
             "%s: header length %llu exceeds the file (%zu bytes) or the 100 MB limit: "
             "truncated or not a safetensors file",
             what, (unsigned long long)hlen, n);
        goto fail;
    }
    f->data_start = 8 + (size_t)hlen;
    size_t data_size = n - f->data_start;
    json_error_t je;
    root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        errf(err, errlen, st, "%s: bad JSON header at line %d column %d (byte %d): %s", what,
             je.line, je.column, je.position + 8, je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        errf(err, errlen, st, "%s: the header is not a JSON object", what);
        goto fail;
    }
    size_t cnt = json_object_size(root);
    f->t = calloc(cnt ? cnt : 1, sizeof *f->t);
    f->names = calloc(cnt ? cnt : 1, sizeof *f->names);
    f->meta_k = calloc(cnt ? cnt : 1, sizeof *f->meta_k);
    f->meta_v = calloc(cnt ? cnt : 1, sizeof *f->meta_v);
    sp = calloc(cnt ? cnt : 1, sizeof *sp);
    if (!f->t || !f->names || !f->meta_k || !f->meta_v || !sp) {
        st = errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        st = !strcmp(key, "__metadata__")
                 ? st_read_metadata(f, val, what, err, errlen)
                 : st_read_tensor(f, key, val, data_size, sp, what, err, errlen);
        if (st)
            goto fail;
    }
    if ((st = st_check_tiling(f, sp, data_size, what, err, errlen)))
        goto fail;
    json_decref(root);
    free(sp);
    *out = f;
    return EQM_OK;
fail:
    json_decref(root);
    free(sp);
    st_close(f);
    return st;
}

int st_parse(const void *bytes, size_t n, const char *what, st_file **out, char *err,
             size_t errlen)
{
    unsigned char *b = malloc(n ? n : 1);
    if (!b)
        return errf(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    memcpy(b, bytes, n);
    return st_parse_owned(b, n, what, out, err, errlen);
}

int st_read(const char *path, st_file **out, char *err, size_t errlen)
{
    unsigned char *b;
    size_t n;
    /* Regular files only (a FIFO or device is refused at once, never read). */
    int rc = fs_read_file(path, 0, SIZE_MAX, &b, &n, err, errlen);
    if (rc)
        return rc == EQM_ERR_NOMEM ? rc : EQM_ERR_IO;
    return st_parse_owned(b, n, path, out, err, errlen);
}

int st_count(const st_file *f) { return f->n; }
const st_tensor *st_at(const st_file *f, int i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name))
            return &f->t[i];
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_k[i], key))
            return f->meta_v[i];
    return NULL;
}

/* EQM_OK when every value of an F32/F64 tensor is finite and (F64) within float range;
 * other dtypes are not checked. The message names the tensor and the element. */
static int check_finite(const st_tensor *t, char *err, size_t errlen)
{
    int f64 = !strcmp(t->dtype, "F64");
    if (!f64 && strcmp(t->dtype, "F32"))
        return EQM_OK;
    const unsigned char *p = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        double v;
        if (f64) {
            memcpy(&v, p + 8 * i, 8);
        } else {
            float x;
            memcpy(&x, p + 4 * i, 4);
            v = x;
        }
        if (!(fabs(v) <= FLT_MAX))
            return errf(err, errlen, EQM_ERR_NUMERIC,
                        "tensor '%s' holds %s at element %zu: broken weights; refused", t->name,
                        isnan(v) ? "NaN" : isinf(v) ? "Inf" : "a value beyond float range", i);
    }
    return EQM_OK;
}

int st_to_f32(const st_tensor *t, float *dst, size_t n, char *err, size_t errlen)
{
    if (n != t->numel)
        return errf(err, errlen, EQM_ERR_INVAL, "tensor '%s' has %zu elements, expected %zu",
                       t->name, t->numel, n);
    if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F64"))
        return errf(err, errlen, EQM_ERR_UNSUPPORTED,
                       "tensor '%s' has dtype %s; expected F32 (or F64)", t->name, t->dtype);
    int rc = check_finite(t, err, errlen); /* before writing anything */
    if (rc)
        return rc;
    if (!strcmp(t->dtype, "F32")) {
        memcpy(dst, t->data, n * sizeof(float));
    } else {
        const unsigned char *p = t->data;
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
    }
    return EQM_OK;
}

/* ------------------------------------------------------------------ writer ------ */

typedef struct wt {
    char *name;
    char dtype[8];
    size_t elem;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t bytes;
    const void *data;
} wt;

struct st_writer {
    wt *t;
    int n, cap;
    json_t *meta;
};

st_writer *st_writer_create(void)
{
    st_writer *w = calloc(1, sizeof *w);
    if (w && !(w->meta = json_object())) {
        free(w);
        return NULL;
    }
    return w;
}

void st_writer_destroy(st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    json_decref(w->meta);
    free(w);
}

int st_writer_add(st_writer *w, const char *name, const char *dtype, int ndim,
                  const int64_t *shape, const void *data, char *err, size_t errlen)
{
    size_t es = st_dtype_size(dtype);
    if (!es)
        return errf(err, errlen, EQM_ERR_UNSUPPORTED, "%s: unknown dtype '%s'", name, dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS || !name[0] || !strcmp(name, "__metadata__"))
        return errf(err, errlen, EQM_ERR_INVAL, "'%s': bad name or ndim %d", name, ndim);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return errf(err, errlen, EQM_ERR_INVAL, "duplicate tensor name '%s'", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        wt *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt)
            return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
        w->t = nt, w->cap = cap;
    }
    wt *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->elem = es;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            free(t->name);
            return errf(err, errlen, EQM_ERR_INVAL, "'%s': negative dimension", name);
        }
        t->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    t->bytes = numel * es;
    t->data = data;
    w->n++;
    return EQM_OK;
}

int st_writer_meta(st_writer *w, const char *key, const char *value)
{
    return json_object_set_new(w->meta, key, json_string(value)) ? EQM_ERR_NOMEM : EQM_OK;
}

int st_writer_write(st_writer *w, const char *path, char *err, size_t errlen)
{
    int st = EQM_ERR_NOMEM;
    char *hdr = NULL, *tmp = NULL;
    FILE *fp = NULL;
    json_t *root = json_object();
    int *order = malloc((size_t)(w->n ? w->n : 1) * sizeof *order);
    if (!root || !order)
        goto fail;
    /* Larger elements first (stable): every tensor starts aligned to its element size. */
    int k = 0;
    for (size_t es = 8; es >= 1; es /= 2)
        for (int i = 0; i < w->n; i++)
            if (w->t[i].elem == es)
                order[k++] = i;
    if (json_object_size(w->meta) && json_object_set(root, "__metadata__", w->meta))
        goto fail;
    size_t off = 0;
    for (int j = 0; j < k; j++) {
        wt *t = &w->t[order[j]];
        json_t *e = json_object(), *sh = json_array();
        if (!e || !sh) {
            json_decref(e);
            json_decref(sh);
            goto fail;
        }
        for (int d = 0; d < t->ndim; d++)
            json_array_append_new(sh, json_integer(t->shape[d]));
        json_object_set_new(e, "dtype", json_string(t->dtype));
        json_object_set_new(e, "shape", sh);
        json_object_set_new(e, "data_offsets",
                            json_pack("[II]", (json_int_t)off, (json_int_t)(off + t->bytes)));
        if (json_object_set_new(root, t->name, e))
            goto fail;
        off += t->bytes;
    }
    hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr)
        goto fail;
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    size_t pl = strlen(path) + 5;
    tmp = malloc(pl);
    if (!tmp)
        goto fail;
    snprintf(tmp, pl, "%s.tmp", path);
    fp = fopen(tmp, "wb");
    if (!fp) {
        st = errf(err, errlen, EQM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto fail;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(hdr, 1, hl, fp) == hl;
    for (size_t i = hl; ok && i < padded; i++)
        ok = fputc(' ', fp) != EOF;
    for (int j = 0; ok && j < k; j++) {
        wt *t = &w->t[order[j]];
        ok = t->bytes == 0 || fwrite(t->data, 1, t->bytes, fp) == t->bytes;
    }
    if (fclose(fp))
        ok = 0;
    fp = NULL;
    if (!ok) {
        remove(tmp);
        st = errf(err, errlen, EQM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path)) {
        remove(tmp);
        st = errf(err, errlen, EQM_ERR_IO, "%s: cannot rename to %s: %s", tmp, path,
                     strerror(errno));
        goto fail;
    }
    st = EQM_OK;
fail:
    if (st == EQM_ERR_NOMEM)
        errf(err, errlen, st, "%s: out of memory", path);
    if (fp)
        fclose(fp);
    free(tmp);
    free(hdr);
    free(order);
    json_decref(root);
    return st;
}

/* ------------------------------------------------------------------ backbone interchange */

/* Append to a bounded message. */
static void cat(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t n, const char *fmt, ...)
{
    size_t l = strlen(buf);
    if (l + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, n - l, fmt, ap);
    va_end(ap);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* PyTorch shape of a module tensor (4-D: OHWI -> OIHW). */
static void torch_shape(const eqm_tensor_info *ti, int64_t *sh)
{
    if (ti->ndim == 4) {
        sh[0] = ti->shape[0], sh[1] = ti->shape[3], sh[2] = ti->shape[1], sh[3] = ti->shape[2];
    } else {
        for (int d = 0; d < ti->ndim; d++)
            sh[d] = ti->shape[d];
    }
}

int st_export_backbone(const eqm_model *m, const char *path, int64_t num_batches_tracked,
                       const char *const *meta, char *err, size_t errlen)
{
    const eqm_module_inst *mi = &m->mod[EQM_SLOT_BACKBONE];
    if (!m->finalized || !mi->plugin)
        return errf(err, errlen, EQM_ERR_STATE, "export: the model has no finalized backbone");
    int st = EQM_ERR_NOMEM;
    st_writer *w = st_writer_create();
    float **conv = calloc((size_t)mi->n_tensors + 1, sizeof *conv);
    int n_bn = 0;
    for (int i = 0; i < mi->n_tensors; i++)
        n_bn += ends_with(mi->info[i].name, ".running_var");
    int64_t *nbt = malloc(((size_t)n_bn + 1) * sizeof *nbt);
    char **nbt_names = calloc((size_t)n_bn + 1, sizeof *nbt_names);
    if (!w || !conv || !nbt || !nbt_names) {
        errf(err, errlen, st, "export: out of memory");
        goto done;
    }
    st_writer_meta(w, "format", "pt");
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2)
        st_writer_meta(w, meta[i], meta[i + 1]);
    int b = 0;
    for (int i = 0; i < mi->n_tensors; i++) {
        const eqm_tensor_info *ti = &mi->info[i];
        int64_t sh[4];
        torch_shape(ti, sh);
        const float *src = mi->param[i];
        if (ti->ndim == 4) { /* (O, kh, kw, I) -> (O, I, kh, kw) */
            int O = ti->shape[0], KH = ti->shape[1], KW = ti->shape[2], I = ti->shape[3];
            conv[i] = malloc(mi->numel[i] * sizeof(float));
            if (!conv[i]) {
                errf(err, errlen, st, "export: out of memory");
                goto done;
            }
            for (int o = 0; o < O; o++)
                for (int y = 0; y < KH; y++)
                    for (int x = 0; x < KW; x++)
                        for (int c = 0; c < I; c++)
                            conv[i][(((size_t)o * I + c) * KH + y) * KW + x] =
                                src[(((size_t)o * KH + y) * KW + x) * I + c];
            src = conv[i];
        }
        if ((st = st_writer_add(w, ti->name, "F32", ti->ndim, sh, src, err, errlen)) < 0)
            goto done;
        if (ends_with(ti->name, ".running_var")) {
            size_t l = strlen(ti->name) - strlen(".running_var");
            size_t nl = l + sizeof ".num_batches_tracked";
            nbt_names[b] = malloc(nl);
            if (!nbt_names[b]) {
                st = errf(err, errlen, EQM_ERR_NOMEM, "export: out of memory");
                goto done;
            }
            snprintf(nbt_names[b], nl, "%.*s.num_batches_tracked", (int)l, ti->name);
            nbt[b] = num_batches_tracked;
            if ((st = st_writer_add(w, nbt_names[b], "I64", 0, NULL, &nbt[b], err, errlen)) < 0)
                goto done;
            b++;
        }
    }
    st = st_writer_write(w, path, err, errlen);
done:
    for (int i = 0; conv && i < mi->n_tensors; i++)
        free(conv[i]);
    for (int i = 0; nbt_names && i < n_bn; i++)
        free(nbt_names[i]);
    free(conv);
    free(nbt);
    free(nbt_names);
    st_writer_destroy(w);
    return st;
}

#define MAX_LISTED 12

int st_import_backbone(eqm_model *m, const char *path, char *err, size_t errlen)
{
    eqm_module_inst *mi = &m->mod[EQM_SLOT_BACKBONE];
    if (!m->finalized || !mi->plugin)
        return errf(err, errlen, EQM_ERR_STATE, "import: the model has no finalized backbone");
    st_file *f = NULL;
    int st = st_read(path, &f, err, errlen);
    if (st < 0)
        return st;
    char missing[1024] = "", extra[1024] = "", bad[2048] = "";
    int n_missing = 0, n_extra = 0, n_bad = 0;
    char bad_msg[512];
    /* Pass 1: validate everything (names, shapes, dtypes, finite values). */
    for (int i = 0; i < mi->n_tensors; i++) {
        const eqm_tensor_info *ti = &mi->info[i];
        const st_tensor *t = st_find(f, ti->name);
        if (!t) {
            if (n_missing++ < MAX_LISTED)
                cat(missing, sizeof missing, "%s%s", n_missing > 1 ? ", " : "", ti->name);
            continue;
        }
        int64_t sh[4];
        torch_shape(ti, sh);
        int same = t->ndim == ti->ndim;
        for (int d = 0; same && d < ti->ndim; d++)
            same = t->shape[d] == sh[d];
        int fl = !strcmp(t->dtype, "F32") || !strcmp(t->dtype, "F64");
        if (same && fl && check_finite(t, bad_msg, sizeof bad_msg)) {
            if (n_bad++ < MAX_LISTED)
                cat(bad, sizeof bad, "%s%s", n_bad > 1 ? "; " : "", bad_msg);
            continue;
        }
        if (!same || !fl) {
            if (n_bad++ < MAX_LISTED) {
                cat(bad, sizeof bad, "%s%s: ", n_bad > 1 ? "; " : "", ti->name);
                if (!fl)
                    cat(bad, sizeof bad, "dtype %s (need F32)", t->dtype);
                if (!same) {
                    cat(bad, sizeof bad, "%sshape [", fl ? "" : ", ");
                    for (int d = 0; d < t->ndim; d++)
                        cat(bad, sizeof bad, "%s%" PRId64, d ? ", " : "", t->shape[d]);
                    cat(bad, sizeof bad, "] in the file, [");
                    for (int d = 0; d < ti->ndim; d++)
                        cat(bad, sizeof bad, "%s%" PRId64, d ? ", " : "", sh[d]);
                    cat(bad, sizeof bad, "] expected");
                }
            }
        }
    }
    /* extras: real tensors first, then stray num_batches_tracked (less telling) */
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < st_count(f); j++) {
            const char *name = st_at(f, j)->name;
            if (ends_with(name, ".num_batches_tracked") != pass)
                continue;
            int known = model_find(m, EQM_SLOT_BACKBONE, name) >= 0;
            if (!known && ends_with(name, ".num_batches_tracked")) {
                char rv[256];
                size_t l = strlen(name) - strlen(".num_batches_tracked");
                snprintf(rv, sizeof rv, "%.*s.running_var", (int)l, name);
                known = model_find(m, EQM_SLOT_BACKBONE, rv) >= 0;
            }
            if (!known && n_extra++ < MAX_LISTED)
                cat(extra, sizeof extra, "%s%s", n_extra > 1 ? ", " : "", name);
        }
    }
    if (n_missing || n_extra || n_bad) {
        char msg[4096] = "";
        cat(msg, sizeof msg, "%s does not match backbone/%s:", path, mi->plugin->desc.name);
        if (n_missing)
            cat(msg, sizeof msg, " %d missing tensor(s): %s%s.", n_missing, missing,
                n_missing > MAX_LISTED ? ", ..." : "");
        if (n_extra)
            cat(msg, sizeof msg, " %d unexpected tensor(s): %s%s.", n_extra, extra,
                n_extra > MAX_LISTED ? ", ..." : "");
        if (n_bad)
            cat(msg, sizeof msg, " %d mismatched: %s%s.", n_bad, bad,
                n_bad > MAX_LISTED ? "; ..." : "");
        cat(msg, sizeof msg,
            "\nhint: check the [backbone] options (depth, stem, width) against the PyTorch "
            "model; save its state_dict without fc (model.fc = torch.nn.Identity())");
        errf(err, errlen, EQM_ERR_FORMAT, "%s", msg);
        st_close(f);
        return EQM_ERR_FORMAT;
    }
    /* Pass 2: copy (conv: OIHW -> OHWI). */
    float *tmp = NULL;
    size_t tmp_n = 0;
    for (int i = 0; i < mi->n_tensors && st == EQM_OK; i++) {
        const eqm_tensor_info *ti = &mi->info[i];
        const st_tensor *t = st_find(f, ti->name);
        if (ti->ndim != 4) {
            st = st_to_f32(t, mi->param[i], mi->numel[i], err, errlen);
            continue;
        }
        if (tmp_n < mi->numel[i]) {
            float *nt = realloc(tmp, mi->numel[i] * sizeof *nt);
            if (!nt) {
                st = errf(err, errlen, EQM_ERR_NOMEM, "import: out of memory");
                break;
            }
            tmp = nt, tmp_n = mi->numel[i];
        }
        if ((st = st_to_f32(t, tmp, mi->numel[i], err, errlen)) < 0)
            break;
        int O = ti->shape[0], KH = ti->shape[1], KW = ti->shape[2], I = ti->shape[3];
        float *dst = mi->param[i];
        for (int o = 0; o < O; o++)
            for (int y = 0; y < KH; y++)
                for (int x = 0; x < KW; x++)
                    for (int c = 0; c < I; c++)
                        dst[(((size_t)o * KH + y) * KW + x) * I + c] =
                            tmp[(((size_t)o * I + c) * KH + y) * KW + x];
    }
    free(tmp);
    st_close(f);
    return st;
}

