/* host/train/trainer.c: `equimod train`: run folder, training loop, checkpoints, resume,
 * signals, online kNN, metrics and report (trainer.h).
 *
 * Run folder:
 *   config.ini      the resolved config (every section with its defaults)
 *   metrics.jsonl   one JSON object per line: {"kind":"step",...} per step and
 *                   {"kind":"epoch",...} per epoch (see write_step/write_epoch for the keys),
 *                   {"kind":"knn",...} per kNN evaluation. Appended across resumes.
 *   checkpoint.last, checkpoint.prev   (checkpoint.h) sections: config (text), tensors
 *                   (text: "slot index offset numel flags name" per tensor), params,
 *                   target (BYOL), optim (momentum buffers), state (struct train_state)
 *   report.md       summary at the end of training; `equimod eval` appends its results
 *   loss.svg        loss curves (per-step total loss, per-epoch means of each term)
 * Config hash: FNV-1a of the resolved config text without [run] and [eval] and without the
 * keys that only steer the stopping/logging (train.max_steps, checkpoint_every,
 * checkpoint_steps, log_every, threads): those may change on resume.
 * Left out: multi-GPU, mixed precision, gradient accumulation.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "loader/loader.h"
#include "sections.h"
#include "shards/shards.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/trainer.h"

/* ------------------------------------------------------------ options ------------ */

#define TO(f) offsetof(train_opts, f)
const eqm_param_spec train_section_spec[] = {
    {"epochs", EQM_PARAM_INT, TO(epochs), "800", 1, 1e9, NULL, "training epochs"},
    {"threads", EQM_PARAM_INT, TO(threads), "0", 0, 4096, NULL,
     "compute threads (0 = every online CPU)"},
    {"equimod", EQM_PARAM_BOOL, TO(equimod), "true", 0, 0, NULL,
     "use the [equimod] module (false: the plain SimCLR/BYOL baseline on 2N rows)"},
    {"max_samples", EQM_PARAM_INT, TO(max_samples), "0", 0, 1e15, NULL,
     "train on the first M samples of the train split only (0 = all)"},
    {"max_steps", EQM_PARAM_INT, TO(max_steps), "0", 0, 1e15, NULL,
     "stop after this many steps in all, saving a checkpoint (0 = run to the end)"},
    {"checkpoint_every", EQM_PARAM_INT, TO(checkpoint_every), "1", 0, 1e9, NULL,
     "save a checkpoint every E epochs (0 = only at the end and on stop)"},
    {"checkpoint_steps", EQM_PARAM_INT, TO(checkpoint_steps), "0", 0, 1e15, NULL,
     "also save every S steps (0 = off)"},
    {"log_every", EQM_PARAM_INT, TO(log_every), "20", 1, 1e9, NULL,
     "steps between progress lines when stderr is not a terminal"},
    {"steps_per_epoch", EQM_PARAM_INT, TO(steps_per_epoch), "0", 0, 1e12, NULL,
     "schedule length per epoch for streaming data (0 = from the loader, or from the "
     "dataset's sample count, e.g. an imagenet_tar index)"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};
const size_t train_section_size = sizeof(train_opts);

#define OO(f) offsetof(optim_opts, f)
const eqm_param_spec optim_section_spec[] = {
    {"name", EQM_PARAM_ENUM, OO(name), "lars", 0, -1, "lars|sgd",
     "LARS (METHOD.md §9) or SGD with momentum"},
    {"lr", EQM_PARAM_FLOAT, OO(lr), "4.0", 0, 1e4, NULL,
     "base learning rate (absolute, not scaled with the batch)"},
    {"momentum", EQM_PARAM_FLOAT, OO(momentum), "0.9", 0, 0.9999, NULL, "momentum"},
    {"weight_decay", EQM_PARAM_FLOAT, OO(weight_decay), "1e-6", 0, 1, NULL,
     "weight decay of conv/linear weights (BN and biases: none)"},
    {"eta", EQM_PARAM_FLOAT, OO(eta), "1e-3", 0, 1, NULL, "LARS trust coefficient"},
    {"nesterov", EQM_PARAM_BOOL, OO(nesterov), "false", 0, 0, NULL, "SGD: Nesterov momentum"},
    {"warmup_epochs", EQM_PARAM_FLOAT, OO(warmup_epochs), "10", 0, 1e9, NULL,
     "linear warmup length in epochs (per-step)"},
    {"warmup_start", EQM_PARAM_FLOAT, OO(warmup_start), "1e-8", 0, 1, NULL,
     "warmup starts at lr * this factor"},
    {"final_lr", EQM_PARAM_FLOAT, OO(final_lr), "1e-8", 0, 1e4, NULL,
     "end of the cosine decay (eta_min)"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};
const size_t optim_section_size = sizeof(optim_opts);

#define EO(f) offsetof(eval_opts, f)
const eqm_param_spec eval_section_spec[] = {
    {"knn_k", EQM_PARAM_INT, EO(knn_k), "200", 1, 1e6, NULL, "kNN neighbours"},
    {"knn_t", EQM_PARAM_FLOAT, EO(knn_t), "0.1", 1e-6, 1e3, NULL, "kNN temperature"},
    {"knn_every", EQM_PARAM_INT, EO(knn_every), "0", 0, 1e9, NULL,
     "online kNN every N epochs during training (0 = off)"},
    {"knn_at_end", EQM_PARAM_BOOL, EO(knn_at_end), "false", 0, 0, NULL,
     "kNN at the end of training, printed and added to the report"},
    {"knn_baseline", EQM_PARAM_BOOL, EO(knn_baseline), "false", 0, 0, NULL,
     "also measure the kNN of the untrained backbone before step 0"},
    {"train_limit", EQM_PARAM_INT, EO(train_limit), "0", 0, 1e15, NULL,
     "kNN bank / linear train rows: first M samples of the train split (0 = all)"},
    {"test_limit", EQM_PARAM_INT, EO(test_limit), "0", 0, 1e15, NULL,
     "test rows: first M samples of the test split (0 = all)"},
    {"batch", EQM_PARAM_INT, EO(batch), "256", 1, 1e6, NULL, "rows per feature forward"},
    {"linear_epochs", EQM_PARAM_INT, EO(linear_epochs), "90", 1, 1e6, NULL,
     "linear probe epochs (METHOD.md §10)"},
    {"linear_lr", EQM_PARAM_FLOAT, EO(linear_lr), "0.2", 0, 1e3, NULL, "linear probe lr"},
    {"linear_final_lr", EQM_PARAM_FLOAT, EO(linear_final_lr), "1e-4", 0, 1e3, NULL,
     "linear probe cosine floor"},
    {"linear_momentum", EQM_PARAM_FLOAT, EO(linear_momentum), "0.9", 0, 0.9999, NULL,
     "linear probe momentum"},
    {"linear_wd", EQM_PARAM_FLOAT, EO(linear_wd), "0", 0, 1, NULL, "linear probe weight decay"},
    {"linear_nesterov", EQM_PARAM_BOOL, EO(linear_nesterov), "true", 0, 0, NULL,
     "linear probe Nesterov momentum"},
    {"linear_batch", EQM_PARAM_INT, EO(linear_batch), "256", 1, 1e6, NULL,
     "linear probe batch"},
    {NULL, EQM_PARAM_END, 0, NULL, 0, 0, NULL, NULL}};
const size_t eval_section_size = sizeof(eval_opts);

/* ------------------------------------------------------------ helpers ------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

static char *config_text(const eqm_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    config_write(cfg, f);
    fclose(f);
    return buf;
}

/* Hash of the resolved config minus what may change on resume (see the file header). */
static uint64_t config_hash_text(const char *text)
{
    static const char *skip_sections[] = {"eval", NULL};
    static const char *skip_keys[] = {"train.max_steps", "train.checkpoint_every",
                                      "train.checkpoint_steps", "train.log_every",
                                      "train.threads", "run.out_dir", "run.name",
                                      "loader.workers", "loader.prefetch", NULL};
    uint64_t h = CKPT_HASH_INIT;
    int skip = 0;
    char section[128] = "";
    const char *p = text;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *q = p;
        while (q < p + n && (*q == ' ' || *q == '\t'))
            q++;
        size_t rest = n - (size_t)(q - p);
        if (rest && *q == '[') {
            const char *close = memchr(q, ']', rest);
            size_t l = close ? (size_t)(close - q - 1) : 0;
            if (l >= sizeof section)
                l = sizeof section - 1;
            memcpy(section, q + 1, l);
            section[l] = 0;
            skip = 0;
            for (int i = 0; skip_sections[i]; i++)
                if (!strcmp(section, skip_sections[i]))
                    skip = 1;
            if (!skip)
                h = ckpt_hash(h, q, rest);
        } else if (!skip && rest && *q != '#' && *q != ';') {
            int sk = 0;
            size_t sl = strlen(section);
            for (int i = 0; skip_keys[i]; i++) {
                const char *k = skip_keys[i];
                if (strncmp(k, section, sl) || k[sl] != '.')
                    continue;
                k += sl + 1;
                size_t l = strlen(k);
                if (rest > l && !strncmp(q, k, l) && (q[l] == ' ' || q[l] == '=' || q[l] == '\t'))
                    sk = 1;
            }
            if (!sk)
                h = ckpt_hash(h, q, rest);
        }
        p = e ? e + 1 : NULL;
    }
    return h;
}

int report_append(const char *run_dir, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/report.md", run_dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return EQM_ERR_IO;
    fputs(text, f);
    return fclose(f) ? EQM_ERR_IO : EQM_OK;
}

/* Read a double option of a plugin by key from its option struct (BYOL's ema_base). */
static int plugin_double_opt(const eqm_plugin *p, const void *opts, const char *key, double *v)
{
    const eqm_param_spec *s = p ? p->desc.params : NULL;
    for (; s && s->key; s++)
        if (!strcmp(s->key, key) && s->type == EQM_PARAM_FLOAT) {
            memcpy(v, (const char *)opts + s->offset, sizeof *v);
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------ loaders ---------- */

/* A streaming source that also owns the [data] option struct it was built from. */
typedef struct owned_source {
    eqm_sample_source inner;
    void *opts;
} owned_source;

static int os_get(void *c, int64_t i, eqm_image *img, size_t cap, int32_t *l)
{
    owned_source *o = c;
    return o->inner.get(o->inner.ctx, i, img, cap, l);
}
static int os_start(void *c, int64_t e)
{
    owned_source *o = c;
    return o->inner.start_epoch ? o->inner.start_epoch(o->inner.ctx, e) : EQM_OK;
}
static int os_next(void *c, void **raw, int64_t *id)
{
    owned_source *o = c;
    return o->inner.next(o->inner.ctx, raw, id);
}
static int os_decode(void *c, void *raw, eqm_image *img, size_t cap, int32_t *l)
{
    owned_source *o = c;
    return o->inner.decode(o->inner.ctx, raw, img, cap, l);
}
static int os_decode_scaled(void *c, void *raw, int m, eqm_image *img, size_t cap, int32_t *l)
{
    owned_source *o = c;
    return o->inner.decode_scaled(o->inner.ctx, raw, m, img, cap, l);
}

static const char *os_error(void *c)
{
    owned_source *o = c;
    return o->inner.error ? o->inner.error(o->inner.ctx) : "";
}
static void os_destroy(void *c)
{
    owned_source *o = c;
    if (o->inner.destroy)
        o->inner.destroy(o->inner.ctx);
    free(o->opts);
    free(o);
}

int train_loader_open(eqm_loader **out, eqm_config *cfg, const eqm_registry *reg,
                      const char *split, const eqm_loader_opts *lo, char *err, size_t errlen)
{
    const eqm_plugin *pl = NULL;
    void *opts = NULL;
    int rc = config_bind_plugin(cfg, reg, "data", EQM_KIND_DATASET, &pl, &opts, err, errlen);
    if (rc)
        return rc;
    if (pl->ops.dataset.get) { /* random access: the loader opens the dataset itself */
        free(opts);
        return loader_create(out, cfg, reg, split, lo, err, errlen);
    }
    run_opts ro;
    memset(&ro, 0, sizeof ro);
    if ((rc = config_bind(cfg, "run", run_spec, &ro, NULL, err, errlen))) {
        free(opts);
        return rc;
    }
    owned_source *o = calloc(1, sizeof *o);
    if (!o) {
        free(opts);
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    }
    o->opts = opts;
    rc = shard_source_create(pl, opts, split, (uint64_t)ro.seed, 0, 1, &o->inner, err, errlen);
    if (rc) {
        free(opts);
        free(o);
        return rc;
    }
    eqm_sample_source src = o->inner;
    src.ctx = o;
    src.get = o->inner.get ? os_get : NULL;
    src.start_epoch = os_start;
    src.next = o->inner.next ? os_next : NULL;
    src.decode = o->inner.decode ? os_decode : NULL;
    src.decode_scaled = o->inner.decode_scaled ? os_decode_scaled : NULL;
    src.error = os_error;
    src.destroy = os_destroy;
    rc = loader_create_source(out, cfg, reg, &src, lo, err, errlen);
    if (rc)
        os_destroy(o);
    return rc;
}

/* ------------------------------------------------------------ model -------------- */

/* Build backbone (+ method, + equimod) for images of loader size; not initialised. */
static int build_model(eqm_config *cfg, const eqm_registry *reg, int h, int w, int c, int p_dim,
                       int with_method, int with_equimod, int max_rows, eqm_model *m,
                       void *opts[EQM_SLOT_COUNT], char *err, size_t errlen)
{
    static const char *sections[EQM_SLOT_COUNT] = {"backbone", "method", "equimod"};
    static const int kinds[EQM_SLOT_COUNT] = {EQM_KIND_BACKBONE, EQM_KIND_METHOD,
                                              EQM_KIND_EQUIMOD};
    model_reset(m);
    int D = 0;
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        opts[s] = NULL;
        if ((s == EQM_SLOT_METHOD && !with_method) || (s == EQM_SLOT_EQUIMOD && !with_equimod))
            continue;
        const eqm_plugin *pl = NULL;
        int rc = config_bind_plugin(cfg, reg, sections[s], kinds[s], &pl, &opts[s], err, errlen);
        if (rc)
            return rc;
        eqm_module_cfg mc = {0};
        mc.size = sizeof mc;
        mc.in_h = h, mc.in_w = w, mc.in_c = c;
        mc.in_dim = D;
        mc.p_dim = p_dim;
        mc.max_rows = max_rows;
        rc = model_add_module(m, pl, opts[s], &mc, err, errlen);
        if (rc)
            return rc;
        if (s == EQM_SLOT_BACKBONE) {
            eqm_module_inst *bi = &m->mod[EQM_SLOT_BACKBONE];
            D = bi->ops->out_dim ? bi->ops->out_dim(bi->self) : 0;
            if (D <= 0)
                return errf(err, errlen, EQM_ERR_STATE, "backbone/%s: bad output width %d",
                             pl->desc.name, D);
        }
    }
    return model_finalize(m, err, errlen);
}

static void free_opts(void *opts[EQM_SLOT_COUNT])
{
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        free(opts[s]);
        opts[s] = NULL;
    }
}

/* "tensors" section text. */
static char *tensor_table(const eqm_model *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int n = model_n_tensors(m);
    for (int k = 0; k < n; k++) {
        eqm_model_tensor t;
        if (model_tensor(m, k, &t))
            continue;
        fprintf(f, "%d %d %zu %zu %u %s\n", t.slot, t.index, t.offset, t.numel, t.info->flags,
                t.info->name);
    }
    fclose(f);
    return buf;
}

int train_restore_slot(eqm_model *m, int slot, const char *ckpt_path, char *err, size_t errlen)
{
    ckpt c;
    int rc = ckpt_read(ckpt_path, 0, &c, err, errlen);
    if (rc)
        return rc;
    const ckpt_section *ts = ckpt_find(&c, "tensors"), *ps = ckpt_find(&c, "params");
    if (!ts || !ps) {
        ckpt_free(&c);
        return errf(err, errlen, EQM_ERR_FORMAT, "%s: no tensors/params section", ckpt_path);
    }
    char *tab = malloc(ts->bytes + 1);
    if (!tab) {
        ckpt_free(&c);
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    }
    memcpy(tab, ts->data, ts->bytes);
    tab[ts->bytes] = 0;
    eqm_module_inst *mi = &m->mod[slot];
    int found = 0;
    rc = EQM_OK;
    for (char *line = strtok(tab, "\n"); line && rc == EQM_OK; line = strtok(NULL, "\n")) {
        int s, idx;
        size_t off, numel;
        unsigned fl;
        char name[256];
        if (sscanf(line, "%d %d %zu %zu %u %255s", &s, &idx, &off, &numel, &fl, name) != 6) {
            rc = errf(err, errlen, EQM_ERR_FORMAT, "%s: bad tensor table line '%s'", ckpt_path,
                       line);
            break;
        }
        if (s != slot)
            continue;
        int i = model_find(m, slot, name);
        if (i < 0) {
            rc = errf(err, errlen, EQM_ERR_FORMAT,
                       "%s: tensor %s is not in this model (another architecture?)", ckpt_path,
                       name);
            break;
        }
        if (mi->numel[i] != numel || off + numel > ps->bytes / sizeof(float)) {
            rc = errf(err, errlen, EQM_ERR_FORMAT,
                       "%s: tensor %s has %zu values in the checkpoint, %zu in the model",
                       ckpt_path, name, numel, mi->numel[i]);
            break;
        }
        memcpy(mi->param[i], (const float *)ps->data + off, numel * sizeof(float));
        found++;
    }
    if (rc == EQM_OK && found != mi->n_tensors)
        rc = errf(err, errlen, EQM_ERR_FORMAT,
                   "%s: the checkpoint has %d of the %d tensors of %s", ckpt_path, found,
                   mi->n_tensors, mi->plugin ? mi->plugin->desc.name : "?");
    free(tab);
    ckpt_free(&c);
    return rc;
}

/* ------------------------------------------------------------ features ----------- */

int extract_features(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                     const char *split, const char *view, int64_t limit, int batch,
                     float **feat, int32_t **labels, int64_t *n, int *n_classes, char **desc,
                     char *err, size_t errlen)
{
    *feat = NULL;
    *labels = NULL;
    *n = 0;
    if (desc)
        *desc = NULL;
    eqm_module_inst *bb = &m->mod[EQM_SLOT_BACKBONE];
    if (batch > bb->cfg.max_rows)
        batch = bb->cfg.max_rows;
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_SINGLE;
    lo.single_view = view;
    lo.batch_size = batch;
    lo.shuffle_set = 1;
    lo.shuffle = 0;
    lo.drop_last_set = 1;
    lo.drop_last = 0;
    lo.limit = limit;
    eqm_loader *ld = NULL;
    int rc = train_loader_open(&ld, cfg, reg, split, &lo, err, errlen);
    if (rc)
        return rc;
    eqm_loader_info li;
    loader_info(ld, &li);
    if (n_classes)
        *n_classes = li.n_classes;
    if (desc && li.source_desc)
        *desc = strdup(li.source_desc);
    const int D = bb->out_dim;
    int64_t cap = li.n_samples > 0 ? li.n_samples : 1024, rows = 0;
    float *F = malloc((size_t)cap * D * sizeof(float));
    int32_t *L = malloc((size_t)cap * sizeof(int32_t));
    if (!F || !L) {
        rc = errf(err, errlen, EQM_ERR_NOMEM, "features: out of memory (%lld x %d)",
                   (long long)cap, D);
        goto out;
    }
    rc = loader_start_epoch(ld, 0);
    while (rc == EQM_OK) {
        eqm_batch *b = NULL;
        rc = loader_next(ld, &b);
        if (rc == EQM_EOF) {
            rc = EQM_OK;
            break;
        }
        if (rc) {
            errf(err, errlen, rc, "%s", loader_error(ld));
            break;
        }
        if (rows + b->n > cap) {
            int64_t nc = (rows + b->n) * 2;
            float *F2 = realloc(F, (size_t)nc * D * sizeof(float));
            int32_t *L2 = F2 ? realloc(L, (size_t)nc * sizeof(int32_t)) : NULL;
            if (F2)
                F = F2;
            if (L2)
                L = L2;
            if (!F2 || !L2) {
                loader_release(ld, b);
                rc = errf(err, errlen, EQM_ERR_NOMEM, "features: out of memory");
                break;
            }
            cap = nc;
        }
        eqm_module_io io = {0};
        io.size = sizeof io;
        io.rows = b->n;
        io.train = 0;
        io.in = b->x0;
        io.out = F + rows * D;
        rc = bb->ops->forward(bb->self, &io);
        if (rc)
            errf(err, errlen, rc, "backbone forward: %s", host_ctx_error(bb->ctx));
        memcpy(L + rows, b->labels, b->n * sizeof(int32_t));
        rows += b->n;
        loader_release(ld, b);
    }
out:
    loader_destroy(ld);
    if (rc) {
        free(F), free(L);
        if (desc) {
            free(*desc);
            *desc = NULL;
        }
        return rc;
    }
    *feat = F;
    *labels = L;
    *n = rows;
    return EQM_OK;
}

int knn_of_model(eqm_model *m, eqm_config *cfg, const eqm_registry *reg,
                 const eval_opts *eo, eval_acc *acc, char **test_desc, char *err,
                 size_t errlen)
{
    float *ftr = NULL, *fte = NULL;
    int32_t *ltr = NULL, *lte = NULL;
    int64_t ntr = 0, nte = 0;
    int C = 0;
    int rc = extract_features(m, cfg, reg, "train", "eval_test", eo->train_limit,
                              (int)eo->batch, &ftr, &ltr, &ntr, &C, NULL, err, errlen);
    if (!rc)
        rc = extract_features(m, cfg, reg, "test", "eval_test", eo->test_limit, (int)eo->batch,
                              &fte, &lte, &nte, NULL, test_desc, err, errlen);
    if (!rc) {
        rc = eval_knn(ftr, ltr, ntr, fte, lte, nte, m->mod[EQM_SLOT_BACKBONE].out_dim, C,
                      (int)eo->knn_k, eo->knn_t, acc);
        if (rc)
            errf(err, errlen, rc, "kNN failed (%s)", eqm_status_str(rc));
    }
    free(ftr), free(fte), free(ltr), free(lte);
    return rc;
}

/* ------------------------------------------------------------ loading ------------ */

int trained_load(trained *t, const char *source, const eqm_registry *reg, int max_rows,
                 char **sets, int n_sets, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    struct stat st;
    if (stat(source, &st))
        return errf(err, errlen, EQM_ERR_NOTFOUND, "%s: %s", source, strerror(errno));
    char cfg_path[4096];
    ckpt c;
    int rc;
    char tmpcfg[64] = "";
    if (S_ISDIR(st.st_mode)) {
        char warn[1024];
        const char *which = NULL;
        rc = ckpt_load_latest(source, 0, &c, &which, warn, sizeof warn, err, errlen);
        if (rc)
            return rc;
        if (warn[0])
            host_log(EQM_LOG_WARN, "train", "%s", warn);
        snprintf(t->source, sizeof t->source, "%s/%s", source, which);
        snprintf(cfg_path, sizeof cfg_path, "%s/config.ini", source);
    } else {
        rc = ckpt_read(source, 0, &c, err, errlen);
        if (rc)
            return rc;
        snprintf(t->source, sizeof t->source, "%s", source);
        const ckpt_section *cs = ckpt_find(&c, "config");
        if (!cs) {
            ckpt_free(&c);
            return errf(err, errlen, EQM_ERR_FORMAT, "%s: no embedded config", source);
        }
        snprintf(tmpcfg, sizeof tmpcfg, "/tmp/eqm-ckpt-config-XXXXXX");
        int fd = mkstemp(tmpcfg);
        if (fd < 0 || write(fd, cs->data, cs->bytes) != (ssize_t)cs->bytes) {
            if (fd >= 0)
                close(fd);
            ckpt_free(&c);
            return errf(err, errlen, EQM_ERR_IO, "cannot write a temporary config");
        }
        close(fd);
        snprintf(cfg_path, sizeof cfg_path, "%s", tmpcfg);
    }
    const ckpt_section *ss = ckpt_find(&c, "state");
    if (ss && ss->bytes >= 2 * sizeof(int64_t)) {
        memcpy(&t->step, ss->data, sizeof(int64_t));
        memcpy(&t->epoch, (const char *)ss->data + sizeof(int64_t), sizeof(int64_t));
    }
    ckpt_free(&c);
    t->cfg = config_load(cfg_path, err, errlen);
    if (tmpcfg[0])
        unlink(tmpcfg);
    if (!t->cfg)
        return EQM_ERR_INVAL;
    for (int i = 0; i < n_sets; i++)
        if ((rc = config_set(t->cfg, sets[i], err, errlen))) {
            trained_free(t);
            return rc;
        }
    /* Image size from the loader of the test split (cheap: opens the dataset only). */
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_SINGLE;
    lo.single_view = "eval_test";
    lo.batch_size = 1;
    lo.limit = 1;
    eqm_loader *ld = NULL;
    rc = train_loader_open(&ld, t->cfg, reg, "test", &lo, err, errlen);
    if (rc) {
        trained_free(t);
        return rc;
    }
    eqm_loader_info li;
    loader_info(ld, &li);
    loader_destroy(ld);
    void *opts[EQM_SLOT_COUNT] = {0};
    rc = build_model(t->cfg, reg, li.h, li.w, li.c, 0, 0, 0, max_rows, &t->model, opts, err,
                     errlen);
    t->backbone_opts = opts[0];
    if (!rc)
        rc = train_restore_slot(&t->model, EQM_SLOT_BACKBONE, t->source, err, errlen);
    if (rc)
        trained_free(t);
    return rc;
}

void trained_free(trained *t)
{
    model_destroy(&t->model);
    free(t->backbone_opts);
    if (t->cfg)
        config_destroy(t->cfg);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ the loop ----------- */

typedef struct train_state {
    int64_t step;        /* steps done */
    int64_t epoch;       /* current epoch (== epochs when the run is complete) */
    int64_t batch;       /* batches done in `epoch` */
    int64_t optim_steps; /* optimizer updates done */
    double elapsed_s;    /* training time so far */
    int64_t images;      /* images seen so far */
} train_state;

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

typedef struct trainer {
    eqm_config *cfg;
    const eqm_registry *reg;
    train_opts to;
    run_opts ro;
    optim_opts oo;
    eval_opts eo;
    char dir[4096];
    char *cfg_text;
    uint64_t hash;
    eqm_loader *ld;
    eqm_loader_info li;
    eqm_model m;
    void *opts[EQM_SLOT_COUNT];
    int use_equimod, byol;
    double tau_base;
    optim opt;
    train_state st;
    int64_t S, T, W; /* steps per epoch, total, warmup */
    float *x, *h, *dh, *ht, *tstd;
    FILE *metrics;
    int tty;
} trainer;

static int save_checkpoint(trainer *tr, char *err, size_t errlen)
{
    char *tab = tensor_table(&tr->m);
    if (!tab)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    ckpt_section s[6];
    int n = 0;
    memset(s, 0, sizeof s);
    snprintf(s[n].name, CKPT_NAME_MAX, "config");
    s[n].data = tr->cfg_text, s[n++].bytes = strlen(tr->cfg_text);
    snprintf(s[n].name, CKPT_NAME_MAX, "tensors");
    s[n].data = tab, s[n++].bytes = strlen(tab);
    snprintf(s[n].name, CKPT_NAME_MAX, "params");
    s[n].data = tr->m.params, s[n++].bytes = tr->m.n_floats * sizeof(float);
    if (tr->m.target) {
        snprintf(s[n].name, CKPT_NAME_MAX, "target");
        s[n].data = tr->m.target, s[n++].bytes = tr->m.n_floats * sizeof(float);
    }
    snprintf(s[n].name, CKPT_NAME_MAX, "optim");
    s[n].data = tr->opt.buf, s[n++].bytes = tr->opt.total * sizeof(float);
    tr->st.optim_steps = tr->opt.steps;
    snprintf(s[n].name, CKPT_NAME_MAX, "state");
    s[n].data = &tr->st, s[n++].bytes = sizeof tr->st;
    int rc = ckpt_save_rotate(tr->dir, tr->hash, s, n, err, errlen);
    free(tab);
    return rc;
}

static int restore_checkpoint(trainer *tr, const ckpt *c, char *err, size_t errlen)
{
    const ckpt_section *ps = ckpt_find(c, "params"), *os = ckpt_find(c, "optim"),
                       *ss = ckpt_find(c, "state"), *ts = ckpt_find(c, "target");
    if (!ps || !os || !ss || ps->bytes != tr->m.n_floats * sizeof(float) ||
        os->bytes != tr->opt.total * sizeof(float) || ss->bytes != sizeof(train_state) ||
        (tr->m.target && (!ts || ts->bytes != ps->bytes)))
        return errf(err, errlen, EQM_ERR_FORMAT,
                     "checkpoint does not match this model (sizes differ); it was not used");
    if (ckpt_check_progress(c, tr->dir, tr->to.epochs, tr->S, err, errlen)) return EQM_ERR_FORMAT;
    memcpy(tr->m.params, ps->data, ps->bytes);
    if (tr->m.target)
        memcpy(tr->m.target, ts->data, ts->bytes);
    memcpy(tr->opt.buf, os->data, os->bytes);
    memcpy(&tr->st, ss->data, sizeof tr->st);
    tr->opt.steps = tr->st.optim_steps;
    return EQM_OK;
}

static void json_num(FILE *f, const char *k, double v)
{
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.9g", k, v);
    else
        fprintf(f, ",\"%s\":null", k);
}

/* Per-epoch accumulators of every logged value. */
#define MAX_TERMS 16
typedef struct acc_terms {
    int n;
    const char *name[MAX_TERMS];
    double sum[MAX_TERMS];
    int64_t steps;
} acc_terms;

static void acc_add(acc_terms *a, const char *name, double v)
{
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->name[i], name)) {
            a->sum[i] += v;
            return;
        }
    if (a->n < MAX_TERMS) {
        a->name[a->n] = name;
        a->sum[a->n++] = v;
    }
}

static double acc_mean(const acc_terms *a, const char *name)
{
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->name[i], name))
            return a->steps ? a->sum[i] / a->steps : NAN;
    return NAN;
}

static void progress(trainer *tr, int64_t epoch, int64_t b, double loss, double lr,
                     double img_s, int final_line)
{
    (void)img_s;
    /* Rates over the whole run so far (smoother than one step's). */
    double per_step = tr->st.step > 0 ? tr->st.elapsed_s / tr->st.step : 0;
    double rate = tr->st.elapsed_s > 0 ? tr->st.images / tr->st.elapsed_s : 0;
    double eta = per_step * (double)(tr->T - tr->st.step);
    char eta_s[32];
    snprintf(eta_s, sizeof eta_s, "%dh%02dm%02ds", (int)(eta / 3600), (int)(eta / 60) % 60,
             (int)eta % 60);
    if (tr->tty) {
        int width = 24;
        int fill = tr->S > 0 ? (int)(width * b / tr->S) : 0;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr,
                "\r\033[Kepoch %lld/%lld [%s] %lld/%lld  loss %.4f  lr %.3g  %.0f img/s  ETA %s",
                (long long)epoch + 1, (long long)tr->to.epochs, bar, (long long)b,
                (long long)tr->S, loss, lr, rate, eta_s);
        if (final_line)
            fputc('\n', stderr);
        fflush(stderr);
    } else if (final_line || b % tr->to.log_every == 0) {
        fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.4g %.0f img/s ETA %s\n",
                (long long)epoch + 1, (long long)tr->to.epochs, (long long)b, (long long)tr->S,
                loss, lr, rate, eta_s);
    }
}

static int train_step(trainer *tr, eqm_batch *b, acc_terms *acc, char *err, size_t errlen)
{
    eqm_model *m = &tr->m;
    eqm_module_inst *bb = &m->mod[EQM_SLOT_BACKBONE], *me = &m->mod[EQM_SLOT_METHOD],
                    *eq = &m->mod[EQM_SLOT_EQUIMOD];
    const int N = b->n, D = bb->out_dim, P = b->p;
    const size_t img = (size_t)b->h * b->w * b->c;
    const int rows = tr->use_equimod ? 3 * N : 2 * N;
    double t0 = now_s();
    eqm_loader_stats ls0;
    loader_stats(tr->ld, &ls0);
    double tau = NAN;
    if (tr->byol) {
        tau = sched_ema_tau(tr->st.step, tr->T, tr->tau_base);
        int nt = model_n_tensors(m);
        for (int k = 0; k < nt; k++) {
            eqm_model_tensor t;
            if (!model_tensor(m, k, &t) && t.target)
                ema_update(t.target, t.param, t.numel, tau);
        }
    }
    float *x = tr->x;
    if (tr->use_equimod) {
        memcpy(x, b->x0, N * img * sizeof(float));
        x += N * img;
    }
    memcpy(x, b->x1, N * img * sizeof(float));
    memcpy(x + N * img, b->x2, N * img * sizeof(float));
    model_zero_grad(m);
    memset(tr->dh, 0, (size_t)rows * D * sizeof(float));
    eqm_module_io bio = {0};
    bio.size = sizeof bio;
    bio.rows = rows;
    bio.train = 1;
    bio.in = tr->x;
    bio.out = tr->h;
    int rc = bb->ops->forward(bb->self, &bio);
    if (rc)
        return errf(err, errlen, rc, "backbone forward: %s", host_ctx_error(bb->ctx));
    const size_t view_off = tr->use_equimod ? (size_t)N : 0;
    if (tr->byol) {
        eqm_module_io tio = {0};
        tio.size = sizeof tio;
        tio.rows = 2 * N;
        tio.train = 1;
        tio.use_target = 1;
        tio.in = tr->x + view_off * img;
        tio.out = tr->ht;
        rc = bb->ops->forward(bb->self, &tio);
        if (rc)
            return errf(err, errlen, rc, "backbone target forward: %s",
                         host_ctx_error(bb->ctx));
    }
    eqm_module_io mio = {0};
    mio.size = sizeof mio;
    mio.rows = 2 * N;
    mio.train = 1;
    mio.in = tr->h + view_off * D;
    mio.in_target = tr->byol ? tr->ht : NULL;
    rc = me->ops->forward(me->self, &mio);
    if (rc)
        return errf(err, errlen, rc, "method forward: %s", host_ctx_error(me->ctx));
    mio.din = tr->dh + view_off * D;
    mio.loss_scale = 1.0f;
    rc = me->ops->backward(me->self, &mio);
    if (rc)
        return errf(err, errlen, rc, "method backward: %s", host_ctx_error(me->ctx));
    double l_inv = mio.loss, l_equi = 0;
    eqm_module_io eio = {0};
    if (tr->use_equimod) {
        loader_standardize_t(tr->ld, b->t1, tr->tstd, N);
        loader_standardize_t(tr->ld, b->t2, tr->tstd + (size_t)N * P, N);
        eio.size = sizeof eio;
        eio.rows = 3 * N;
        eio.train = 1;
        eio.in = tr->h;
        eio.t = tr->tstd;
        rc = eq->ops->forward(eq->self, &eio);
        if (rc)
            return errf(err, errlen, rc, "equimod forward: %s", host_ctx_error(eq->ctx));
        eio.din = tr->dh;
        eio.loss_scale = 1.0f;
        rc = eq->ops->backward(eq->self, &eio);
        if (rc)
            return errf(err, errlen, rc, "equimod backward: %s", host_ctx_error(eq->ctx));
        l_equi = eio.loss;
    }
    double loss = l_inv + l_equi;
    if (!isfinite(loss))
        return errf(err, errlen, EQM_ERR_NUMERIC,
                     "loss is %g at step %lld (L_inv %g, lambda*L_equi %g); lower optim.lr or "
                     "check the data",
                     loss, (long long)tr->st.step, l_inv, l_equi);
    bio.dout = tr->dh;
    bio.din = NULL;
    rc = bb->ops->backward(bb->self, &bio);
    if (rc)
        return errf(err, errlen, rc, "backbone backward: %s", host_ctx_error(bb->ctx));
    double lr = sched_warmup_cosine(tr->st.step, tr->oo.lr, tr->W, tr->T, tr->oo.warmup_start,
                                    tr->oo.final_lr);
    rc = optim_step(&tr->opt, lr);
    if (rc)
        return errf(err, errlen, rc, "optimizer step %lld: non-finite gradient",
                     (long long)tr->st.step);
    double dt = now_s() - t0;
    eqm_loader_stats ls1;
    loader_stats(tr->ld, &ls1);
    double stall_ms = (ls1.stall_ns - ls0.stall_ns) / 1e6;
    double img_s = dt > 0 ? N / dt : 0;
    FILE *f = tr->metrics;
    fprintf(f, "{\"kind\":\"step\",\"step\":%lld,\"epoch\":%lld,\"batch\":%lld",
            (long long)tr->st.step, (long long)tr->st.epoch, (long long)tr->st.batch);
    json_num(f, "loss", loss);
    json_num(f, "loss_inv", l_inv);
    if (tr->use_equimod)
        json_num(f, "loss_equi", l_equi);
    json_num(f, "lr", lr);
    if (tr->byol)
        json_num(f, "tau", tau);
    acc_add(acc, "loss", loss);
    acc_add(acc, "loss_inv", l_inv);
    if (tr->use_equimod)
        acc_add(acc, "loss_equi", l_equi);
    for (int i = 0; i < mio.n_metrics && i < EQM_MAX_METRICS; i++)
        if (mio.metrics[i].name) {
            json_num(f, mio.metrics[i].name, mio.metrics[i].value);
            acc_add(acc, mio.metrics[i].name, mio.metrics[i].value);
        }
    for (int i = 0; tr->use_equimod && i < eio.n_metrics && i < EQM_MAX_METRICS; i++)
        if (eio.metrics[i].name) {
            json_num(f, eio.metrics[i].name, eio.metrics[i].value);
            acc_add(acc, eio.metrics[i].name, eio.metrics[i].value);
        }
    json_num(f, "img_s", img_s);
    json_num(f, "stall_ms", stall_ms);
    json_num(f, "step_s", dt);
    fputs("}\n", f);
    fflush(f); /* one line per step, readable while the run goes on */
    acc->steps++;
    acc_add(acc, "stall_ms", stall_ms);
    acc_add(acc, "step_s", dt);
    tr->st.step++;
    tr->st.batch++;
    tr->st.images += N;
    tr->st.elapsed_s += dt;
    progress(tr, tr->st.epoch, tr->st.batch, loss, lr, img_s, 0);
    return EQM_OK;
}

/* SVG of the loss curves from metrics.jsonl: per-step total loss (light) and its moving
 * average, per term (loss_inv, loss_equi) the per-epoch means. */
static int json_get(const char *line, const char *key, double *v)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    if (!strncmp(p, "null", 4))
        return 0;
    char *end;
    *v = strtod(p, &end);
    return end != p;
}

static void write_svg(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t cap = 1024, n = 0;
    double *xs = malloc(cap * sizeof *xs), *ys = malloc(cap * sizeof *ys);
    double *ye = malloc(cap * sizeof *ye);
    char line[4096];
    while (xs && ys && ye && fgets(line, sizeof line, f)) {
        double st, lo, le = NAN;
        if (!strstr(line, "\"kind\":\"step\"") || !json_get(line, "step", &st) ||
            !json_get(line, "loss", &lo))
            continue;
        if (!json_get(line, "loss_equi", &le))
            le = NAN;
        if (n == cap) {
            cap *= 2;
            double *a = realloc(xs, cap * sizeof *xs), *b = realloc(ys, cap * sizeof *ys),
                   *c = realloc(ye, cap * sizeof *ye);
            if (a)
                xs = a;
            if (b)
                ys = b;
            if (c)
                ye = c;
            if (!a || !b || !c)
                break;
        }
        xs[n] = st, ys[n] = lo, ye[n++] = le;
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/loss.svg", dir);
    FILE *o = n ? fopen(path, "w") : NULL;
    if (!o) {
        free(xs), free(ys), free(ye);
        return;
    }
    double x0 = xs[0], x1 = xs[n - 1] > x0 ? xs[n - 1] : x0 + 1, y0 = INFINITY, y1 = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (ys[i] < y0)
            y0 = ys[i];
        if (ys[i] > y1)
            y1 = ys[i];
        if (isfinite(ye[i]) && ye[i] < y0)
            y0 = ye[i];
    }
    if (!(y1 > y0))
        y1 = y0 + 1;
    const double W = 720, H = 400, L = 60, R = 20, Tm = 30, B = 40;
#define PX(x) (L + ((x)-x0) / (x1 - x0) * (W - L - R))
#define PY(y) (Tm + (y1 - (y)) / (y1 - y0) * (H - Tm - B))
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%.0f\" y=\"18\">training loss (%s)</text>\n",
            W, H, L, dir);
    fprintf(o, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, H - B,
            W - R, H - B);
    fprintf(o, "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"black\"/>\n", L, Tm, L,
            H - B);
    for (int k = 0; k <= 4; k++) {
        double yv = y0 + (y1 - y0) * k / 4, xv = x0 + (x1 - x0) * k / 4;
        fprintf(o, "<text x=\"4\" y=\"%.1f\">%.3g</text>\n", PY(yv) + 4, yv);
        fprintf(o, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", PX(xv),
                H - B + 16, xv);
    }
    fprintf(o, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n",
            (L + W - R) / 2, H - 6);
    size_t stride = n > 1500 ? n / 1500 + 1 : 1;
    const char *colors[3] = {"#bbbbee", "#1f3fbf", "#d0501f"};
    for (int series = 0; series < 3; series++) {
        int started = 0;
        double ma = 0;
        size_t win = n / 50 + 1;
        fprintf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"",
                colors[series], series ? "2" : "1");
        for (size_t i = 0; i < n; i++) {
            double v;
            if (series == 0) {
                v = ys[i];
            } else if (series == 1) {
                ma += ys[i] - (i >= win ? ys[i - win] : 0);
                v = ma / (i + 1 < win ? i + 1 : win);
            } else {
                if (!isfinite(ye[i]))
                    continue;
                v = ye[i];
            }
            if (i % stride && i != n - 1)
                continue;
            fprintf(o, "%s%.1f,%.1f", started ? " " : "", PX(xs[i]), PY(v));
            started = 1;
        }
        fputs("\"/>\n", o);
    }
    fprintf(o, "<text x=\"%g\" y=\"%g\" fill=\"#1f3fbf\">total loss (moving mean)</text>\n",
            W - R - 260, Tm + 14);
    fprintf(o, "<text x=\"%g\" y=\"%g\" fill=\"#d0501f\">lambda*L_equi (per step)</text>\n",
            W - R - 260, Tm + 30);
    fputs("</svg>\n", o);
#undef PX
#undef PY
    fclose(o);
    free(xs), free(ys), free(ye);
}

static void write_epoch(trainer *tr, const acc_terms *a, double epoch_s)
{
    FILE *f = tr->metrics;
    fprintf(f, "{\"kind\":\"epoch\",\"epoch\":%lld,\"step\":%lld,\"steps\":%lld",
            (long long)tr->st.epoch, (long long)tr->st.step, (long long)a->steps);
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->name[i], "stall_ms") && strcmp(a->name[i], "step_s"))
            json_num(f, a->name[i], acc_mean(a, a->name[i]));
    double imgs = 0, st = 0;
    for (int i = 0; i < a->n; i++) {
        if (!strcmp(a->name[i], "step_s"))
            st = a->sum[i];
        if (!strcmp(a->name[i], "stall_ms"))
            imgs = a->sum[i];
    }
    json_num(f, "stall_ms", imgs);
    json_num(f, "img_s", st > 0 ? (double)a->steps * tr->li.batch_size / st : 0);
    json_num(f, "epoch_s", epoch_s);
    fputs("}\n", f);
    fflush(f);
}

static void log_knn(trainer *tr, const char *what, const eval_acc *a, const char *desc)
{
    fprintf(tr->metrics,
            "{\"kind\":\"knn\",\"what\":\"%s\",\"step\":%lld,\"epoch\":%lld,\"top1\":%.4f,"
            "\"top5\":%.4f,\"n_test\":%lld}\n",
            what, (long long)tr->st.step, (long long)tr->st.epoch, a->top1, a->top5,
            (long long)a->n);
    fflush(tr->metrics);
    if (tr->tty)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "kNN %s (k=%lld, T=%g): top-1 %.2f%%  top-5 %.2f%%  [%lld test images: %s]\n",
            what, (long long)tr->eo.knn_k, tr->eo.knn_t, a->top1, a->top5, (long long)a->n,
            desc ? desc : "?");
}

static int run_knn(trainer *tr, const char *what, eval_acc *a, char *err, size_t errlen)
{
    char *desc = NULL;
    int rc = knn_of_model(&tr->m, tr->cfg, tr->reg, &tr->eo, a, &desc, err, errlen);
    if (!rc) {
        log_knn(tr, what, a, desc);
        char bank[48] = "all";
        if (tr->eo.train_limit)
            snprintf(bank, sizeof bank, "the first %lld", (long long)tr->eo.train_limit);
        char text[1024];
        snprintf(text, sizeof text,
                 "- kNN %s (k=%lld, T=%g, bank: %s train images): top-1 **%.2f%%**, "
                 "top-5 %.2f%% on %lld test images (%s)\n",
                 what, (long long)tr->eo.knn_k, tr->eo.knn_t, bank, a->top1, a->top5,
                 (long long)a->n, desc ? desc : "?");
        report_append(tr->dir, text);
    }
    free(desc);
    return rc;
}

/* top-1 of the untrained kNN recorded in metrics.jsonl (this run or before a resume). */
static double untrained_top1(const char *dir)
{
    char path[4200], line[1024];
    if (snprintf(path, sizeof path, "%s/metrics.jsonl", dir) >= (int)sizeof path)
        return NAN;
    FILE *f = fopen(path, "r");
    double v = NAN;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "\"what\":\"untrained\""))
            json_get(line, "top1", &v);
    if (f)
        fclose(f);
    return v;
}

static void final_report(trainer *tr, const acc_terms *last, double wall_s)
{
    char text[4096];
    const eqm_module_inst *bb = &tr->m.mod[EQM_SLOT_BACKBONE], *me = &tr->m.mod[EQM_SLOT_METHOD];
    char extra[256] = "";
    if (tr->use_equimod)
        snprintf(extra, sizeof extra,
                 "- last epoch EquiMod: lambda*L_equi %.4f, equivariance gain %.4f\n",
                 acc_mean(last, "loss_equi"), acc_mean(last, "equi_gain"));
    snprintf(text, sizeof text,
             "\n## Training finished\n\n"
             "- method: %s%s, backbone: %s (D = %d), %zu trainable floats\n"
             "- data: %s, %lld samples per epoch, batch %d, %lld steps per epoch\n"
             "- epochs %lld, steps %lld, images %lld, training time %.1f s (this process: "
             "%.1f s wall), %.1f images/s\n"
             "- last epoch means: loss %.4f, L_inv %.4f\n%s"
             "- optimizer: %s lr %g wd %g, warmup %g epochs, cosine to %g\n\n"
             "![loss](loss.svg)\n\n",
             me->plugin ? me->plugin->desc.name : "?", tr->use_equimod ? " + equimod" : "",
             bb->plugin ? bb->plugin->desc.name : "?", bb->out_dim, tr->m.n_trainable,
             tr->li.source_desc ? tr->li.source_desc : "?", (long long)tr->li.n_samples,
             tr->li.batch_size, (long long)tr->S, (long long)tr->to.epochs,
             (long long)tr->st.step, (long long)tr->st.images, tr->st.elapsed_s, wall_s,
             tr->st.elapsed_s > 0 ? tr->st.images / tr->st.elapsed_s : 0,
             acc_mean(last, "loss"), acc_mean(last, "loss_inv"), extra,
             tr->oo.name ? "SGD" : "LARS", tr->oo.lr, tr->oo.weight_decay,
             tr->oo.warmup_epochs, tr->oo.final_lr);
    report_append(tr->dir, text);
    write_svg(tr->dir);
}

static void trainer_free(trainer *tr)
{
    if (tr->ld)
        loader_destroy(tr->ld);
    optim_free(&tr->opt);
    model_destroy(&tr->m);
    free_opts(tr->opts);
    free(tr->x), free(tr->h), free(tr->dh), free(tr->ht), free(tr->tstd);
    free(tr->cfg_text);
    if (tr->metrics)
        fclose(tr->metrics);
    if (tr->cfg)
        config_destroy(tr->cfg);
}

static int write_text_atomic(const char *path, const char *text)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fputs(text, f);
    if (fclose(f) || rename(tmp, path))
        return -1;
    return 0;
}

int train_main(const char *config, char **sets, int n_sets, const char *out_dir, int resume)
{
    trainer T0;
    trainer *tr = &T0;
    memset(tr, 0, sizeof *tr);
    char err[2048] = "";
    int rc = EQM_OK, status = 1;
    double wall0 = now_s();
    struct stat st;
    char cfg_path[4096];
    if (!stat(config, &st) && S_ISDIR(st.st_mode)) {
        snprintf(cfg_path, sizeof cfg_path, "%s/config.ini", config);
        if (!out_dir)
            out_dir = config;
    } else {
        snprintf(cfg_path, sizeof cfg_path, "%s", config);
    }
    tr->cfg = config_load(cfg_path, err, sizeof err);
    if (!tr->cfg) {
        fprintf(stderr, "equimod train: %s\n", err);
        return 1;
    }
    for (int i = 0; i < n_sets; i++)
        if (config_set(tr->cfg, sets[i], err, sizeof err)) {
            fprintf(stderr, "equimod train: --set %s: %s\n", sets[i], err);
            goto done;
        }
    tr->reg = cli_registry();
    if (!tr->reg) {
        fprintf(stderr, "equimod train: no plugins loaded\n");
        goto done;
    }
    if ((rc = config_resolve(tr->cfg, tr->reg, err, sizeof err)))
        goto fail;
    {
        const train_opts *t = config_section_opts(tr->cfg, "train");
        const optim_opts *o = config_section_opts(tr->cfg, "optim");
        const eval_opts *e = config_section_opts(tr->cfg, "eval");
        const run_opts *r = config_section_opts(tr->cfg, "run");
        if (!t || !o || !e || !r) {
            rc = errf(err, sizeof err, EQM_ERR_STATE,
                       "[train]/[optim]/[eval]/[run] are not in host/sections.c");
            goto fail;
        }
        tr->to = *t, tr->oo = *o, tr->eo = *e, tr->ro = *r;
    }
    if (tr->to.threads > 0)
        host_threads_init((int)tr->to.threads);
    /* Run folder: --out, else [run] out_dir/name, else out_dir/<config stem>. */
    if (out_dir) {
        snprintf(tr->dir, sizeof tr->dir, "%s", out_dir);
    } else {
        char stem[256];
        const char *base = strrchr(cfg_path, '/');
        if (snprintf(stem, sizeof stem, "%s", base ? base + 1 : cfg_path) >= (int)sizeof stem)
            stem[sizeof stem - 1] = 0;
        char *dot = strrchr(stem, '.');
        if (dot)
            *dot = 0;
        snprintf(tr->dir, sizeof tr->dir, "%s/%s", tr->ro.out_dir && *tr->ro.out_dir ? tr->ro.out_dir : "runs",
                 tr->ro.name && *tr->ro.name ? tr->ro.name : stem);
    }
    /* Data. */
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_VIEWS;
    lo.limit = tr->to.max_samples;
    if ((rc = train_loader_open(&tr->ld, tr->cfg, tr->reg, "train", &lo, err, sizeof err)))
        goto fail;
    loader_info(tr->ld, &tr->li);
    if (tr->li.batches_per_epoch <= 0 && tr->to.steps_per_epoch > 0)
        tr->li.batches_per_epoch = tr->to.steps_per_epoch;
    if (tr->li.batches_per_epoch <= 0) {
        /* Streaming: ask the dataset itself for its size (imagenet_tar: the shard index). */
        const eqm_plugin *pl = NULL;
        void *o = NULL;
        const loader_cfg *lc = config_section_opts(tr->cfg, "loader");
        if (!config_bind_plugin(tr->cfg, tr->reg, "data", EQM_KIND_DATASET, &pl, &o, err,
                                sizeof err)) {
            eqm_host *ctx = host_ctx_create("dataset");
            void *self = NULL;
            if (ctx && !pl->ops.dataset.open(host_api(), ctx, o, "train", &self)) {
                eqm_dataset_info di;
                memset(&di, 0, sizeof di);
                di.size = sizeof di;
                int64_t n = -1;
                if (!pl->ops.dataset.info(self, &di))
                    n = di.n_samples;
                if (n <= 0 && pl->ops.dataset.stream_source) {
                    eqm_stream_source ss;
                    memset(&ss, 0, sizeof ss);
                    ss.size = sizeof ss;
                    if (!pl->ops.dataset.stream_source(self, &ss))
                        n = ss.n_samples;
                }
                if (n > 0) {
                    if (tr->to.max_samples > 0 && tr->to.max_samples < n)
                        n = tr->to.max_samples;
                    int64_t bs = tr->li.batch_size;
                    tr->li.n_samples = n;
                    tr->li.batches_per_epoch = (lc && !lc->drop_last) ? (n + bs - 1) / bs : n / bs;
                }
                pl->ops.dataset.close(self);
            }
            host_ctx_destroy(ctx);
            free(o);
        }
        err[0] = 0;
    }
    if (tr->li.batches_per_epoch <= 0) {
        rc = errf(err, sizeof err, EQM_ERR_INVAL,
                   "the train split gives %lld batches per epoch; lower loader.batch_size, "
                   "raise train.max_samples, or (streaming data without an index) set "
                   "train.steps_per_epoch",
                   (long long)tr->li.batches_per_epoch);
        goto fail;
    }
    /* Model. */
    tr->use_equimod = tr->to.equimod && config_has_section(tr->cfg, "equimod");
    const int N = tr->li.batch_size;
    const int max_rows = (tr->use_equimod ? 3 : 2) * N;
    if ((rc = build_model(tr->cfg, tr->reg, tr->li.h, tr->li.w, tr->li.c, tr->li.p, 1,
                          tr->use_equimod, max_rows, &tr->m, tr->opts, err, sizeof err)))
        goto fail;
    tr->byol = tr->m.has_target;
    tr->tau_base = 0.996;
    if (tr->byol)
        plugin_double_opt(tr->m.mod[EQM_SLOT_METHOD].plugin, tr->opts[EQM_SLOT_METHOD],
                          "ema_base", &tr->tau_base);
    if ((rc = model_init(&tr->m, (uint64_t)tr->ro.seed, err, sizeof err)))
        goto fail;
    /* Optimizer over every trained tensor. */
    {
        int nt = model_n_tensors(&tr->m), np = 0;
        optim_param *pp = calloc(nt ? nt : 1, sizeof *pp);
        if (!pp) {
            rc = errf(err, sizeof err, EQM_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int k = 0; k < nt; k++) {
            eqm_model_tensor t;
            if (model_tensor(&tr->m, k, &t) || !t.grad)
                continue;
            pp[np++] = (optim_param){t.param, t.grad, t.numel, !!(t.info->flags & EQM_T_DECAY)};
        }
        optim_cfg oc = {tr->oo.name ? OPTIM_SGD : OPTIM_LARS, tr->oo.momentum,
                        tr->oo.weight_decay, tr->oo.eta, tr->oo.nesterov};
        rc = optim_init(&tr->opt, &oc, pp, np);
        free(pp);
        if (rc) {
            errf(err, sizeof err, rc, "optimizer: bad settings in [optim]");
            goto fail;
        }
    }
    tr->S = tr->li.batches_per_epoch;
    tr->T = tr->S * tr->to.epochs;
    tr->W = (int64_t)llround(tr->oo.warmup_epochs * tr->S);
    if (tr->W > tr->T)
        tr->W = tr->T;
    const size_t img = (size_t)tr->li.h * tr->li.w * tr->li.c;
    const int D = tr->m.mod[EQM_SLOT_BACKBONE].out_dim;
    tr->x = malloc((size_t)max_rows * img * sizeof(float));
    tr->h = malloc((size_t)max_rows * D * sizeof(float));
    tr->dh = malloc((size_t)max_rows * D * sizeof(float));
    tr->ht = malloc((size_t)2 * N * D * sizeof(float));
    tr->tstd = malloc((size_t)2 * N * (tr->li.p > 0 ? tr->li.p : 1) * sizeof(float));
    if (!tr->x || !tr->h || !tr->dh || !tr->ht || !tr->tstd) {
        rc = errf(err, sizeof err, EQM_ERR_NOMEM, "out of memory for batch buffers");
        goto fail;
    }
    /* Run folder and resume. */
    tr->cfg_text = config_text(tr->cfg);
    if (!tr->cfg_text) {
        rc = errf(err, sizeof err, EQM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    tr->hash = config_hash_text(tr->cfg_text);
    if (mkdir_p(tr->dir)) {
        rc = errf(err, sizeof err, EQM_ERR_IO, "%s: cannot create the run folder: %s", tr->dir,
                   strerror(errno));
        goto fail;
    }
    int resumed = 0;
    {
        ckpt c;
        const char *which = NULL;
        char warn[2048];
        rc = ckpt_load_latest(tr->dir, tr->hash, &c, &which, warn, sizeof warn, err, sizeof err);
        if (warn[0])
            host_log(EQM_LOG_WARN, "train", "%s", warn);
        if (rc == EQM_OK) {
            rc = restore_checkpoint(tr, &c, err, sizeof err);
            ckpt_free(&c);
            if (rc)
                goto fail;
            resumed = 1;
            host_log(EQM_LOG_INFO, "train", "%s: resuming from %s at epoch %lld, step %lld",
                     tr->dir, which, (long long)tr->st.epoch, (long long)tr->st.step);
        } else if (rc == EQM_ERR_NOTFOUND) {
            if (resume) {
                errf(err, sizeof err, rc, "%s: --resume given but the folder has no checkpoint",
                      tr->dir);
                goto fail;
            }
            rc = EQM_OK;
        } else {
            goto fail; /* foreign or every checkpoint unreadable: never overwrite them */
        }
    }
    {
        char p[4200];
        if (snprintf(p, sizeof p, "%s/config.ini", tr->dir) >= (int)sizeof p) {
            rc = errf(err, sizeof err, EQM_ERR_INVAL, "run folder path too long");
            goto fail;
        }
        if (write_text_atomic(p, tr->cfg_text)) {
            rc = errf(err, sizeof err, EQM_ERR_IO, "%s: cannot write: %s", p, strerror(errno));
            goto fail;
        }
        if (snprintf(p, sizeof p, "%s/metrics.jsonl", tr->dir) >= (int)sizeof p)
            p[0] = 0;
        tr->metrics = fopen(p, resumed ? "a" : "w");
        if (!tr->metrics) {
            rc = errf(err, sizeof err, EQM_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
            goto fail;
        }
        if (!resumed) {
            if (snprintf(p, sizeof p, "%s/report.md", tr->dir) >= (int)sizeof p)
                p[0] = 0;
            FILE *f = fopen(p, "w");
            if (f) {
                fprintf(f, "# equimod run %s\n\nConfig: `config.ini` (resolved); metrics: "
                           "`metrics.jsonl`.\n\n",
                        tr->dir);
                fclose(f);
            }
        }
    }
    tr->tty = isatty(2);
    fprintf(stderr,
            "equimod train: %s -> %s\n  %s%s on %s, backbone %s (D=%d), %lld samples, batch "
            "%d, %lld steps/epoch x %lld epochs%s\n",
            cfg_path, tr->dir, tr->m.mod[EQM_SLOT_METHOD].plugin->desc.name,
            tr->use_equimod ? "+equimod" : "", tr->li.source_desc ? tr->li.source_desc : "?",
            tr->m.mod[EQM_SLOT_BACKBONE].plugin->desc.name, D, (long long)tr->li.n_samples, N,
            (long long)tr->S, (long long)tr->to.epochs, resumed ? " (resumed)" : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal kills at once */
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_signal = 0;
    if (!resumed && tr->eo.knn_baseline) {
        eval_acc a;
        if ((rc = run_knn(tr, "untrained", &a, err, sizeof err)))
            goto fail_sig;
    }
    acc_terms acc;
    memset(&acc, 0, sizeof acc);
    int stopped = 0;
    while (tr->st.epoch < tr->to.epochs && !stopped) {
        double e0 = now_s();
        if ((rc = loader_start_epoch(tr->ld, tr->st.epoch))) {
            errf(err, sizeof err, rc, "%s", loader_error(tr->ld));
            goto fail_sig;
        }
        /* Mid-epoch resume: skip the batches already trained on (deterministic). */
        for (int64_t k = 0; k < tr->st.batch; k++) {
            eqm_batch *b;
            rc = loader_next(tr->ld, &b);
            if (rc) {
                errf(err, sizeof err, rc, "resume: skipping batch %lld: %s", (long long)k,
                      rc == EQM_EOF ? "epoch ended early" : loader_error(tr->ld));
                goto fail_sig;
            }
            loader_release(tr->ld, b);
        }
        memset(&acc, 0, sizeof acc);
        for (;;) {
            if (stop_signal || (tr->to.max_steps > 0 && tr->st.step >= tr->to.max_steps)) {
                stopped = 1;
                break;
            }
            /* A stream longer than the epoch (train.steps_per_epoch, or max_samples below
             * the index count) ends the epoch at S batches, where the schedule has it. */
            if (tr->st.batch >= tr->S)
                break;
            eqm_batch *b;
            rc = loader_next(tr->ld, &b);
            if (rc == EQM_EOF)
                break;
            if (rc) {
                errf(err, sizeof err, rc, "%s", loader_error(tr->ld));
                goto fail_sig;
            }
            rc = train_step(tr, b, &acc, err, sizeof err);
            loader_release(tr->ld, b);
            if (rc)
                goto fail_sig;
            if (tr->to.checkpoint_steps > 0 && tr->st.step % tr->to.checkpoint_steps == 0 &&
                (rc = save_checkpoint(tr, err, sizeof err)))
                goto fail_sig;
        }
        if (stopped)
            break;
        if (acc.steps)
            progress(tr, tr->st.epoch, tr->st.batch, acc_mean(&acc, "loss"),
                     sched_warmup_cosine(tr->st.step - 1, tr->oo.lr, tr->W, tr->T,
                                         tr->oo.warmup_start, tr->oo.final_lr),
                     tr->li.batch_size * acc.steps / fmax(1e-9, acc_mean(&acc, "step_s") * acc.steps),
                     1);
        write_epoch(tr, &acc, now_s() - e0);
        tr->st.epoch++;
        tr->st.batch = 0;
        int last = tr->st.epoch >= tr->to.epochs;
        if (tr->eo.knn_every > 0 && tr->st.epoch % tr->eo.knn_every == 0 && !last) {
            eval_acc a;
            char what[64];
            snprintf(what, sizeof what, "epoch %lld", (long long)tr->st.epoch);
            if ((rc = run_knn(tr, what, &a, err, sizeof err)))
                goto fail_sig;
        }
        if (last || (tr->to.checkpoint_every > 0 && tr->st.epoch % tr->to.checkpoint_every == 0))
            if ((rc = save_checkpoint(tr, err, sizeof err)))
                goto fail_sig;
    }
    fflush(tr->metrics);
    if (stopped) {
        if ((rc = save_checkpoint(tr, err, sizeof err)))
            goto fail_sig;
        if (tr->tty)
            fputc('\n', stderr);
        fprintf(stderr,
                "equimod train: %s at step %lld (epoch %lld, batch %lld); checkpoint saved in "
                "%s; continue with: equimod train %s --out %s\n",
                stop_signal ? (stop_signal == SIGINT ? "interrupted (SIGINT)"
                                                     : "interrupted (SIGTERM)")
                            : "stopped by train.max_steps",
                (long long)tr->st.step, (long long)tr->st.epoch, (long long)tr->st.batch,
                tr->dir, cfg_path, tr->dir);
        write_svg(tr->dir);
        status = stop_signal ? 130 : 0;
        goto restore_sig;
    }
    if (resumed && acc.steps == 0 && tr->st.step > 0 && !tr->to.max_steps) {
        fprintf(stderr, "equimod train: %s is already complete (%lld steps)\n", tr->dir,
                (long long)tr->st.step);
    } else {
        final_report(tr, &acc, now_s() - wall0);
    }
    if (tr->eo.knn_at_end) {
        eval_acc a;
        if ((rc = run_knn(tr, "final", &a, err, sizeof err)))
            goto fail_sig;
        double base = untrained_top1(tr->dir);
        if (isfinite(base))
            fprintf(stderr, "kNN top-1 after training: %.2f%% (the same backbone untrained: "
                            "%.2f%%, %+.2f points)\n",
                    a.top1, base, a.top1 - base);
        else
            fprintf(stderr, "kNN top-1 after training: %.2f%%\n", a.top1);
    }
    fprintf(stderr, "equimod train: done: %lld steps in %.1f s (%.1f img/s); report: %s/report.md\n",
            (long long)tr->st.step, tr->st.elapsed_s,
            tr->st.elapsed_s > 0 ? tr->st.images / tr->st.elapsed_s : 0, tr->dir);
    status = 0;
    goto restore_sig;
fail_sig:
    if (tr->tty)
        fputc('\n', stderr);
    fprintf(stderr, "equimod train: error: %s\n", err[0] ? err : eqm_status_str(rc));
    status = 1;
restore_sig:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    goto done;
fail:
    fprintf(stderr, "equimod train: error: %s\n", err[0] ? err : eqm_status_str(rc));
    status = 1;
done:
    trainer_free(tr);
    return status;
}
