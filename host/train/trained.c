/* host/train/trained.c: the modules of a config built into a model (build_model), the
 * tensor table of a checkpoint, and a trained backbone loaded back from a run folder or a
 * checkpoint (trained_load, train_restore_slot; trainer.h). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/checkpoint.h"
#include "train/run.h"

/* ------------------------------------------------------------ model -------------- */

int build_model(eqm_config *cfg, const eqm_registry *reg, int h, int w, int c, int p_dim,
                       int with_method, int with_equimod, int max_rows, eqm_model *m,
                       void *opts[EQM_SLOT_COUNT], char *err, size_t errlen)
{
    static const char *sections[EQM_SLOT_COUNT] = {"backbone", "method", "equimod"};
    static const int kinds[EQM_SLOT_COUNT] = {EQM_KIND_BACKBONE, EQM_KIND_METHOD,
                                              EQM_KIND_EQUIMOD};
    model_reset(m);
    int D = 0;
    /* ABI 1.6: at train.precision = bf16 the modules may store their activations in bf16
     * (EQM_ACT_BF16), for every forward of this model (training and evaluation alike) */
    const train_opts *to = config_section_opts(cfg, "train");
    const eqm_nn_api *nn = nn_api_table();
    const uint32_t act_flags =
        to && to->precision == 1 && EQM_API_HAS(nn, batchnorm_forward_store) &&
                nn->batchnorm_forward_store
            ? EQM_ACT_BF16
            : 0u;
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
        mc.act_flags = act_flags;
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

int config_check_plugins(eqm_config *cfg, const eqm_registry *reg, int with_views, char *err,
                         size_t errlen)
{
    int w = 32, h = 32, c = 3, p = 0; /* without [views]: a nominal input for the modules */
    int rc = with_views
                 ? loader_view_shape(cfg, reg, &w, &h, &c, &p, err, errlen)
                 : EQM_OK;
    if (rc)
        return rc;
    const train_opts *t = config_section_opts(cfg, "train");
    if (t && (rc = host_threads_check("train.threads", t->threads, err, errlen)))
        return rc;
    int with_equimod = t && t->equimod && config_has_section(cfg, "equimod");
    eqm_model m;
    void *opts[EQM_SLOT_COUNT] = {0};
    /* 6 rows: the fewest a method (2N) and EquiMod (3N) accept, N = 2 */
    rc = build_model(cfg, reg, h, w, c, p, 1, with_equimod, 6, &m, opts, err, errlen);
    model_destroy(&m);
    free_opts(opts);
    return rc;
}

void free_opts(void *opts[EQM_SLOT_COUNT])
{
    for (int s = 0; s < EQM_SLOT_COUNT; s++) {
        free(opts[s]);
        opts[s] = NULL;
    }
}

/* "tensors" section text. */
char *tensor_table(const eqm_model *m)
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


/* ------------------------------------------------------------ loading ------------ */

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int has_checkpoint_magic(const char *path)
{
    char b[8];
    FILE *f = fopen(path, "rb");
    int yes = f && fread(b, 1, sizeof b, f) == sizeof b && !memcmp(b, CKPT_MAGIC, sizeof b);
    if (f)
        fclose(f);
    return yes;
}

/* The checkpoint of a run folder or a checkpoint file: ms->ckpt, step/epoch, and the path
 * of its config (RUN/config.ini, or the embedded one written to tmpcfg). */
static int source_checkpoint(model_source *ms, const char *source, int is_dir, char *cfg_path,
                             size_t cfg_len, char tmpcfg[64], char *err, size_t errlen)
{
    ckpt c;
    int rc;
    if (is_dir) {
        char warn[1024] = "";
        const char *which = NULL;
        if ((rc = ckpt_load_latest(source, 0, &c, &which, warn, sizeof warn, err, errlen)))
            return rc;
        if (warn[0])
            host_log(EQM_LOG_WARN, "train", "%s", warn);
        snprintf(ms->ckpt, sizeof ms->ckpt, "%s/%s", source, which);
        snprintf(cfg_path, cfg_len, "%s/config.ini", source);
    } else {
        if ((rc = ckpt_read(source, 0, &c, err, errlen)))
            return rc;
        snprintf(ms->ckpt, sizeof ms->ckpt, "%s", source);
        const ckpt_section *cs = ckpt_find(&c, "config");
        if (!cs) {
            ckpt_free(&c);
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "%s: the checkpoint has no embedded config\nhint: use its run folder "
                        "(config.ini next to it)",
                        source);
        }
        snprintf(tmpcfg, 64, "/tmp/eqm-ckpt-config-XXXXXX");
        int fd = mkstemp(tmpcfg);
        if (fd < 0 || write(fd, cs->data, cs->bytes) != (ssize_t)cs->bytes) {
            if (fd >= 0) {
                close(fd);
                unlink(tmpcfg);
            }
            tmpcfg[0] = 0;
            ckpt_free(&c);
            return errf(err, errlen, EQM_ERR_IO, "cannot write a temporary config: %s",
                        strerror(errno));
        }
        close(fd);
        snprintf(cfg_path, cfg_len, "%s", tmpcfg);
    }
    const ckpt_section *ss = ckpt_find(&c, "state");
    if (ss && ss->bytes >= 2 * sizeof(int64_t)) {
        memcpy(&ms->step, ss->data, sizeof(int64_t));
        memcpy(&ms->epoch, (const char *)ss->data + sizeof(int64_t), sizeof(int64_t));
    }
    ckpt_free(&c);
    return EQM_OK;
}

int model_source_open(model_source *ms, const char *source, char **sets, int n_sets, char *err,
                      size_t errlen)
{
    memset(ms, 0, sizeof *ms);
    struct stat st;
    if (stat(source, &st))
        return errf(err, errlen, EQM_ERR_NOTFOUND, "%s: %s", source, strerror(errno));
    char cfg_path[4096], tmpcfg[64] = "";
    int is_dir = S_ISDIR(st.st_mode);
    if (!is_dir && !has_checkpoint_magic(source) && ends_with(source, ".ini")) {
        snprintf(cfg_path, sizeof cfg_path, "%s", source); /* the untrained model */
    } else {
        int rc = source_checkpoint(ms, source, is_dir, cfg_path, sizeof cfg_path, tmpcfg, err,
                                   errlen);
        if (rc)
            return rc;
    }
    ms->cfg = config_load(cfg_path, err, errlen);
    if (tmpcfg[0])
        unlink(tmpcfg);
    if (!ms->cfg)
        return EQM_ERR_INVAL;
    for (int i = 0; i < n_sets; i++) {
        int rc = config_set(ms->cfg, sets[i], err, errlen);
        if (rc) {
            model_source_close(ms);
            return rc;
        }
    }
    return EQM_OK;
}

void model_source_close(model_source *ms)
{
    if (ms->cfg)
        config_destroy(ms->cfg);
    memset(ms, 0, sizeof *ms);
}

int trained_load(trained *t, const char *source, const eqm_registry *reg, int max_rows,
                 char **sets, int n_sets, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    model_source ms;
    int rc = model_source_open(&ms, source, sets, n_sets, err, errlen);
    if (rc)
        return rc;
    t->cfg = ms.cfg;
    {   /* evaluations run on the run's thread count ([train] threads; 0: every CPU; at
         * most this machine's CPUs: a run may come from a bigger machine) */
        train_opts to;
        memset(&to, 0, sizeof to);
        if ((rc = config_bind(t->cfg, "train", train_section_spec, &to, NULL, err, errlen))) {
            trained_free(t);
            return rc;
        }
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        if (to.threads > 0)
            host_threads_init((int)(cpus > 0 && to.threads > cpus ? cpus : to.threads));
    }
    snprintf(t->source, sizeof t->source, "%s", ms.ckpt);
    t->step = ms.step;
    t->epoch = ms.epoch;
    /* Image size from the loader of the test split (cheap: opens the dataset only). */
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_SINGLE;
    lo.single_view = "eval_test";
    lo.batch_size = 1;
    lo.limit = 1;
    eqm_loader *ld = NULL;
    rc = loader_open(&ld, t->cfg, reg, "test", &lo, err, errlen);
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
    if (!rc && t->source[0]) {
        rc = train_restore_slot(&t->model, EQM_SLOT_BACKBONE, t->source, err, errlen);
        snprintf(t->what, sizeof t->what, "%s", t->source);
    } else if (!rc) { /* a config: the untrained initialisation of [run] seed */
        run_opts ro;
        memset(&ro, 0, sizeof ro);
        rc = config_bind(t->cfg, "run", run_spec, &ro, NULL, err, errlen);
        if (!rc)
            rc = model_init(&t->model, (uint64_t)ro.seed, err, errlen);
        snprintf(t->what, sizeof t->what, "%s (untrained, [run] seed %lld)", source,
                 (long long)ro.seed);
    }
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

