/* host/train/safetensors.c: .safetensors reader and writer (see safetensors.h).
 *
 * The header is JSON parsed with jansson; validation follows the reference implementation:
 * known dtype, non-negative shape, data_offsets within the data region, end - begin =
 * numel * element size, and the tensors cover the data region exactly (no holes/overlap).
 * Left out: memory mapping, big-endian hosts, non-string metadata values.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core.h"
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

static int st_fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int st_fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

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
static int st_parse_owned(unsigned char *buf, size_t n, const char *what, st_file **out,
                          char *err, size_t errlen)
{
    int st = EQM_ERR_FORMAT;
    json_t *root = NULL;
    span *sp = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f) {
        free(buf);
        return st_fail(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    }
    f->buf = buf;
    f->size = n;
    if (n < 8) {
        st_fail(err, errlen, st, "%s: not a safetensors file (%zu bytes, need at least 8)", what,
                n);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > ST_MAX_HEADER || hlen > n - 8) {
        st_fail(err, errlen, st,
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
        st_fail(err, errlen, st, "%s: bad JSON header at line %d column %d (byte %d): %s", what,
                je.line, je.column, je.position + 8, je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        st_fail(err, errlen, st, "%s: the header is not a JSON object", what);
        goto fail;
    }
    size_t cnt = json_object_size(root);
    f->t = calloc(cnt ? cnt : 1, sizeof *f->t);
    f->names = calloc(cnt ? cnt : 1, sizeof *f->names);
    f->meta_k = calloc(cnt ? cnt : 1, sizeof *f->meta_k);
    f->meta_v = calloc(cnt ? cnt : 1, sizeof *f->meta_v);
    sp = calloc(cnt ? cnt : 1, sizeof *sp);
    if (!f->t || !f->names || !f->meta_k || !f->meta_v || !sp) {
        st = st_fail(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                st_fail(err, errlen, st, "%s: __metadata__ must be an object", what);
                goto fail;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    st_fail(err, errlen, st, "%s: __metadata__.%s must be a string", what, mk);
                    goto fail;
                }
                f->meta_k[f->n_meta] = strdup(mk);
                f->meta_v[f->n_meta] = strdup(json_string_value(mv));
                if (!f->meta_k[f->n_meta++] || !f->meta_v[f->n_meta - 1]) {
                    st = st_fail(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
                    goto fail;
                }
            }
            continue;
        }
        st_tensor *t = &f->t[f->n];
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) ||
            !json_is_array(jo) || json_array_size(jo) != 2) {
            st_fail(err, errlen, st,
                    "%s: tensor '%s' needs {\"dtype\": str, \"shape\": [..], "
                    "\"data_offsets\": [begin, end]}",
                    what, key);
            goto fail;
        }
        const char *dt = json_string_value(jd);
        t->elem_size = st_dtype_size(dt);
        if (!t->elem_size || strlen(dt) >= sizeof t->dtype) {
            st = st_fail(err, errlen, EQM_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown dtype '%s'",
                         what, key, dt);
            goto fail;
        }
        snprintf(t->dtype, sizeof t->dtype, "%s", dt);
        if (json_array_size(js) > ST_MAX_DIMS) {
            st = st_fail(err, errlen, EQM_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dims (max %d)",
                         what, key, json_array_size(js), ST_MAX_DIMS);
            goto fail;
        }
        t->ndim = (int)json_array_size(js);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            uint64_t v;
            if (!get_u64(json_array_get(js, (size_t)d), &v) || v > (1ull << 40)) {
                st_fail(err, errlen, st, "%s: tensor '%s': shape[%d] is not a valid size", what,
                        key, d);
                goto fail;
            }
            t->shape[d] = (int64_t)v;
            if (v && numel > SIZE_MAX / v) {
                st_fail(err, errlen, st, "%s: tensor '%s': shape overflows", what, key);
                goto fail;
            }
            numel *= (size_t)v;
        }
        t->numel = numel;
        uint64_t b, e;
        if (!get_u64(json_array_get(jo, 0), &b) || !get_u64(json_array_get(jo, 1), &e) ||
            b > e || e > data_size) {
            st_fail(err, errlen, st,
                    "%s: tensor '%s': data_offsets out of the data region (%zu bytes): "
                    "truncated file?",
                    what, key, data_size);
            goto fail;
        }
        if (numel > SIZE_MAX / t->elem_size || e - b != numel * t->elem_size) {
            st_fail(err, errlen, st,
                    "%s: tensor '%s': data_offsets span %llu bytes but shape x dtype needs %zu",
                    what, key, (unsigned long long)(e - b), numel * t->elem_size);
            goto fail;
        }
        f->names[f->n] = strdup(key);
        if (!f->names[f->n]) {
            st = st_fail(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
            goto fail;
        }
        t->name = f->names[f->n];
        t->data = buf + f->data_start + b;
        sp[f->n] = (span){(size_t)b, (size_t)e, f->n};
        f->n++;
    }
    /* Coverage: sorted spans must tile [0, data_size). */
    qsort(sp, (size_t)f->n, sizeof *sp, span_cmp);
    size_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        if (sp[i].b != pos) {
            st_fail(err, errlen, st, "%s: tensor '%s' %s at byte %zu of the data region", what,
                    f->t[sp[i].i].name, sp[i].b < pos ? "overlaps another" : "leaves a hole",
                    sp[i].b);
            goto fail;
        }
        pos = sp[i].e;
    }
    if (pos != data_size) {
        st_fail(err, errlen, st, "%s: %zu trailing bytes after the last tensor", what,
                data_size - pos);
        goto fail;
    }
    /* Keep tensors in data order. */
    {
        st_tensor *sorted = calloc(f->n > 0 ? (size_t)f->n : 1u, sizeof *sorted);
        if (!sorted) {
            st = st_fail(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
            goto fail;
        }
        for (int i = 0; i < f->n; i++)
            sorted[i] = f->t[sp[i].i];
        free(f->t);
        f->t = sorted;
    }
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
        return st_fail(err, errlen, EQM_ERR_NOMEM, "%s: out of memory", what);
    memcpy(b, bytes, n);
    return st_parse_owned(b, n, what, out, err, errlen);
}

int st_read(const char *path, st_file **out, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return st_fail(err, errlen, EQM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseeko(fp, 0, SEEK_END) || ftello(fp) < 0) {
        fclose(fp);
        return st_fail(err, errlen, EQM_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    }
    size_t n = (size_t)ftello(fp);
    rewind(fp);
    unsigned char *b = malloc(n ? n : 1);
    if (!b) {
        fclose(fp);
        return st_fail(err, errlen, EQM_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, n);
    }
    if (fread(b, 1, n, fp) != n) {
        fclose(fp);
        free(b);
        return st_fail(err, errlen, EQM_ERR_IO, "%s: read failed", path);
    }
    fclose(fp);
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

int st_to_f32(const st_tensor *t, float *dst, size_t n, char *err, size_t errlen)
{
    if (n != t->numel)
        return st_fail(err, errlen, EQM_ERR_INVAL, "tensor '%s' has %zu elements, expected %zu",
                       t->name, t->numel, n);
    if (!strcmp(t->dtype, "F32")) {
        memcpy(dst, t->data, n * sizeof(float));
    } else if (!strcmp(t->dtype, "F64")) {
        const unsigned char *p = t->data;
        for (size_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
    } else {
        return st_fail(err, errlen, EQM_ERR_UNSUPPORTED,
                       "tensor '%s' has dtype %s; expected F32 (or F64)", t->name, t->dtype);
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
        return st_fail(err, errlen, EQM_ERR_UNSUPPORTED, "%s: unknown dtype '%s'", name, dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS || !name[0] || !strcmp(name, "__metadata__"))
        return st_fail(err, errlen, EQM_ERR_INVAL, "'%s': bad name or ndim %d", name, ndim);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name))
            return st_fail(err, errlen, EQM_ERR_INVAL, "duplicate tensor name '%s'", name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        wt *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        if (!nt)
            return st_fail(err, errlen, EQM_ERR_NOMEM, "out of memory");
        w->t = nt, w->cap = cap;
    }
    wt *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name)
        return st_fail(err, errlen, EQM_ERR_NOMEM, "out of memory");
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->elem = es;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            free(t->name);
            return st_fail(err, errlen, EQM_ERR_INVAL, "'%s': negative dimension", name);
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
        st = st_fail(err, errlen, EQM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
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
        st = st_fail(err, errlen, EQM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path)) {
        remove(tmp);
        st = st_fail(err, errlen, EQM_ERR_IO, "%s: cannot rename to %s: %s", tmp, path,
                     strerror(errno));
        goto fail;
    }
    st = EQM_OK;
fail:
    if (st == EQM_ERR_NOMEM)
        st_fail(err, errlen, st, "%s: out of memory", path);
    if (fp)
        fclose(fp);
    free(tmp);
    free(hdr);
    free(order);
    json_decref(root);
    return st;
}
