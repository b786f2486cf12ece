/* host/train/run.c: `equimod train` (trainer.h): train_main is the sequence resolve (config,
 * plugins, run folder path), open (the train split's loader), build (model, optimizer,
 * schedule), resume (run folder, checkpoint), train (epochs of steps, kNN, checkpoints),
 * finish (report); signals stop it with a checkpoint.
 *
 * Run folder:
 *   config.ini      the resolved config (every section with its defaults)
 *   metrics.jsonl   one JSON object per line (report.c). Appended across resumes.
 *   checkpoint.last, checkpoint.prev   (checkpoint.h) sections: config (text), tensors
 *                   (text: "slot index offset numel flags name" per tensor), params,
 *                   target (BYOL), optim (momentum buffers), state (struct train_state)
 *   machine.json    the machine, build and threads of the latest start (machine.c)
 *   report.md       summary at the end of training; `equimod eval` appends its results
 *   loss.svg        loss curves (per-step total loss, per-epoch means of each term)
 * Config hash: FNV-1a of the resolved config text without [run] and [eval] and without the
 * keys that only steer the stopping/logging (train.max_steps, checkpoint_every,
 * checkpoint_steps, log_every, threads): those may change on resume. `precision = fp32` (the
 * default) is left out too (a config from before the key hashes the same).
 * Precision: train.precision = bf16 sets the host's nn precision (EQM_NN_BF16) around each
 * training step (step.c): convolutions and linear layers multiply in bf16 with fp32
 * accumulation; everything stored (params, optimizer state, checkpoints) stays fp32, and
 * kNN evaluation runs fp32. precision is part of the config hash: a run resumes only at
 * the precision it was started with.
 * Left out: multi-GPU, fp16, gradient accumulation.
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

#include "fsutil.h"
#include "train/checkpoint.h"
#include "dist/dist.h"
#include "dist/grad.h"
#include "nn/nn_internal.h"
#include "train/run.h"

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
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
            /* train.precision = fp32 (the default) hashes as its absence, so checkpoints
             * written before the key existed still resume */
            static const char prec[] = "precision = fp32";
            if (!strcmp(section, "train") && rest == sizeof prec - 1 &&
                !strncmp(q, prec, rest))
                sk = 1;
            if (!sk)
                h = ckpt_hash(h, q, rest);
        }
        p = e ? e + 1 : NULL;
    }
    return h;
}


static int save_checkpoint(trainer *tr, char *err, size_t errlen)
{
    if (!tr->writer)
        return EQM_OK; /* rank 0 writes; every rank holds the same state */
    char *tab = tensor_table(&tr->m);
    if (!tab)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    ckpt_section s[7];
    int n = 0;
    char ranks[32];
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
    snprintf(s[n].name, CKPT_NAME_MAX, "ranks"); /* MPI processes (text; see run_resume) */
    snprintf(ranks, sizeof ranks, "%d\n", dist_size());
    s[n].data = ranks, s[n++].bytes = strlen(ranks);
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
    if (ckpt_check_progress(c, tr->dir, tr->to.epochs, tr->S, err, errlen))
        return EQM_ERR_FORMAT;
    /* MPI: a run's rank count is fixed. (No "ranks" section: written before it existed.) */
    const ckpt_section *rs = ckpt_find(c, "ranks");
    char rtext[32] = "";
    if (rs && rs->bytes < sizeof rtext)
        memcpy(rtext, rs->data, rs->bytes);
    long saved = rs ? strtol(rtext, NULL, 10) : dist_size();
    if (saved != dist_size())
        return errf(err, errlen, EQM_ERR_INVAL,
                    "%s: the checkpoint was written by a run of %ld MPI rank(s), this run has "
                    "%d: resume it with the same count (mpirun -np %ld), or train into a new "
                    "run folder (--out DIR). A run's rank count is fixed: resuming under "
                    "another count is not supported",
                    tr->dir, saved, dist_size(), saved);
    memcpy(tr->m.params, ps->data, ps->bytes);
    if (tr->m.target)
        memcpy(tr->m.target, ts->data, ts->bytes);
    memcpy(tr->opt.buf, os->data, os->bytes);
    memcpy(&tr->st, ss->data, sizeof tr->st);
    tr->opt.steps = tr->st.optim_steps;
    return EQM_OK;
}


static void trainer_free(trainer *tr)
{
    if (tr->ld)
        loader_destroy(tr->ld);
    optim_free(&tr->opt);
    model_destroy(&tr->m);
    free_opts(tr->opts);
    free(tr->h), free(tr->dh), free(tr->ht);
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


/* ------------------------------------------------------------ the sequence ------- */

#define RUN_REPORTED 1 /* the phase printed its own message */

/* "[rank R of N] " under MPI (every rank's message says which rank it is), else "". */
static const char *rank_tag(void)
{
    static char tag[48];
    if (dist_size() == 1)
        return "";
    snprintf(tag, sizeof tag, "[rank %d of %d] ", dist_rank(), dist_size());
    return tag;
}

/* Config (a file, or a run folder's config.ini), --set, plugins, resolved sections, the
 * run folder's path. */
static int run_resolve(trainer *tr, const char *config, char **sets, int n_sets,
                       const char *out_dir, char *err, size_t errlen)
{
    struct stat st;
    if (!stat(config, &st) && S_ISDIR(st.st_mode)) {
        snprintf(tr->cfg_path, sizeof tr->cfg_path, "%s/config.ini", config);
        if (!out_dir)
            out_dir = config;
    } else {
        snprintf(tr->cfg_path, sizeof tr->cfg_path, "%s", config);
    }
    tr->cfg = config_load(tr->cfg_path, err, errlen);
    if (!tr->cfg) {
        fprintf(stderr, "equimod train: %s%s\n", rank_tag(), err);
        return RUN_REPORTED;
    }
    for (int i = 0; i < n_sets; i++)
        if (config_set(tr->cfg, sets[i], err, errlen)) {
            fprintf(stderr, "equimod train: %s--set %s: %s\n", rank_tag(), sets[i], err);
            return RUN_REPORTED;
        }
    tr->reg = cli_registry();
    if (!tr->reg) {
        fprintf(stderr, "equimod train: %sno plugins loaded\n", rank_tag());
        return RUN_REPORTED;
    }
    int rc = config_resolve(tr->cfg, tr->reg, err, errlen);
    if (rc)
        return rc;
    const train_opts *t = config_section_opts(tr->cfg, "train");
    const optim_opts *o = config_section_opts(tr->cfg, "optim");
    const eval_opts *e = config_section_opts(tr->cfg, "eval");
    const run_opts *r = config_section_opts(tr->cfg, "run");
    if (!t || !o || !e || !r)
        return errf(err, errlen, EQM_ERR_STATE,
                    "[train]/[optim]/[eval]/[run] are not in host/sections.c");
    tr->to = *t, tr->oo = *o, tr->eo = *e, tr->ro = *r;
    rc = host_threads_check("train.threads", tr->to.threads, err, errlen);
    if (rc)
        return rc;
    if (tr->to.threads > 0)
        host_threads_init((int)tr->to.threads);
    else if (dist_size() > 1 && !getenv("EQM_THREADS")) /* MPI: the node's CPUs shared */
        host_threads_init(dist_threads_per_rank());
    if (tr->to.precision == 1) { /* bf16: the CPU check (nn_internal.h) */
        const char *nat = getenv("EQM_NN_BF16_NATIVE");
        rc = nn_precision_check("train.precision = bf16", nn_bf16_cpu(),
                                nat && *nat && atoi(nat) == 0, err, errlen);
        if (rc)
            return rc;
    }
    /* Run folder: --out, else [run] out_dir/name, else out_dir/<config stem>. */
    if (out_dir) {
        snprintf(tr->dir, sizeof tr->dir, "%s", out_dir);
    } else {
        char stem[256];
        const char *base = strrchr(tr->cfg_path, '/');
        if (snprintf(stem, sizeof stem, "%s", base ? base + 1 : tr->cfg_path) >= (int)sizeof stem)
            stem[sizeof stem - 1] = 0;
        char *dot = strrchr(stem, '.');
        if (dot)
            *dot = 0;
        snprintf(tr->dir, sizeof tr->dir, "%s/%s",
                 tr->ro.out_dir && *tr->ro.out_dir ? tr->ro.out_dir : "runs",
                 tr->ro.name && *tr->ro.name ? tr->ro.name : stem);
    }
    return EQM_OK;
}

/* The train split's loader and the epoch length. */
static int run_open(trainer *tr, char *err, size_t errlen)
{
    eqm_loader_opts lo = {0};
    lo.mode = EQM_LOADER_VIEWS;
    lo.limit = tr->to.max_samples;
    lo.slice_rank = dist_rank(); /* MPI: this rank's slice of every global batch */
    lo.slice_count = dist_size();
    int rc = loader_open(&tr->ld, tr->cfg, tr->reg, "train", &lo, err, errlen);
    if (rc)
        return rc;
    loader_info(tr->ld, &tr->li);
    tr->streaming = tr->li.n_samples < 0;
    if (tr->li.batches_per_epoch <= 0 && tr->to.steps_per_epoch > 0)
        tr->li.batches_per_epoch = tr->to.steps_per_epoch;
    if (tr->li.batches_per_epoch <= 0 && tr->li.stream_samples > 0) {
        /* streaming: the length the dataset announces (imagenet_tar: the shard index) */
        tr->li.n_samples = tr->li.stream_samples;
        tr->li.batches_per_epoch = tr->li.stream_batches;
    }
    if (tr->li.batches_per_epoch <= 0)
        return errf(err, errlen, EQM_ERR_INVAL,
                    "the train split gives %lld batches per epoch; lower loader.batch_size, "
                    "raise train.max_samples, or (streaming data without an index) set "
                    "train.steps_per_epoch",
                    (long long)tr->li.batches_per_epoch);
    return EQM_OK;
}

/* The optimizer over every trained tensor. */
static int run_optimizer(trainer *tr, char *err, size_t errlen)
{
    int nt = model_n_tensors(&tr->m), np = 0;
    optim_param *pp = calloc(nt ? nt : 1, sizeof *pp);
    if (!pp)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    for (int k = 0; k < nt; k++) {
        eqm_model_tensor t;
        if (model_tensor(&tr->m, k, &t) || !t.grad)
            continue;
        pp[np++] = (optim_param){t.param, t.grad, t.numel, !!(t.info->flags & EQM_T_DECAY)};
    }
    optim_cfg oc = {tr->oo.name ? OPTIM_SGD : OPTIM_LARS, tr->oo.momentum, tr->oo.weight_decay,
                    tr->oo.eta, tr->oo.nesterov};
    int rc = optim_init(&tr->opt, &oc, pp, np);
    free(pp);
    if (rc)
        return errf(err, errlen, rc, "optimizer: bad settings in [optim]");
    return EQM_OK;
}

/* Model (initialised from [run] seed), optimizer, schedule, step buffers. */
static int run_build(trainer *tr, char *err, size_t errlen)
{
    tr->use_equimod = tr->to.equimod && config_has_section(tr->cfg, "equimod");
    const int N = tr->li.batch_size;
    const int max_rows = (tr->use_equimod ? 3 : 2) * N;
    /* MPI: before any plugin exists (the NT-Xent scratch size depends on it) */
    dist_nn_set((tr->to.sync_bn ? DIST_NN_SYNC_BN : 0) | DIST_NN_GATHER_LOSS);
    int rc = build_model(tr->cfg, tr->reg, tr->li.h, tr->li.w, tr->li.c, tr->li.p, 1,
                         tr->use_equimod, max_rows, &tr->m, tr->opts, err, errlen);
    if (rc)
        return rc;
    tr->byol = tr->m.has_target;
    const eqm_module_inst *me = &tr->m.mod[EQM_SLOT_METHOD];
    if (tr->byol && !me->ops->target_momentum)
        host_log(EQM_LOG_INFO, "train", "method/%s (ABI 1.1) has no target_momentum: the EMA "
                 "target follows the cosine schedule from 0.996", me->plugin->desc.name);
    if ((rc = model_init(&tr->m, (uint64_t)tr->ro.seed, err, errlen)))
        return rc;
    if ((rc = run_optimizer(tr, err, errlen)))
        return rc;
    if (dist_size() > 1) {
        static const int modes[3] = {DIST_GRAD_THREAD, DIST_GRAD_TEST, DIST_GRAD_SYNC};
        rc = dist_grad_create(&tr->dg, tr->m.grads, tr->m.n_floats,
                              (size_t)tr->to.grad_bucket_mb << 18, modes[tr->to.grad_overlap],
                              err, errlen);
        if (rc || (rc = step_grads_setup(tr, err, errlen)))
            return rc;
        /* the same seed gives the same parameters everywhere: checked, not assumed */
        if ((rc = dist_check_identical(tr->m.params, tr->m.n_floats * sizeof(float),
                                       "initial parameters", err, errlen)))
            return rc;
    }
    tr->S = tr->li.batches_per_epoch;
    tr->T = tr->S * tr->to.epochs;
    tr->W = (int64_t)llround(tr->oo.warmup_epochs * tr->S);
    if (tr->W > tr->T)
        tr->W = tr->T;
    const int D = tr->m.mod[EQM_SLOT_BACKBONE].out_dim;
    tr->h = malloc((size_t)max_rows * D * sizeof(float));
    tr->dh = malloc((size_t)max_rows * D * sizeof(float));
    tr->ht = malloc((size_t)2 * N * D * sizeof(float));
    if (!tr->h || !tr->dh || !tr->ht)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory for batch buffers");
    return EQM_OK;
}

/* config.ini, metrics.jsonl (appended when resumed), report.md (new runs). */
static int run_folder_files(trainer *tr, int resumed, char *err, size_t errlen)
{
    char p[4200];
    if (!tr->writer) { /* the other ranks' step lines go nowhere */
        tr->metrics = fopen("/dev/null", "w");
        return tr->metrics ? EQM_OK
                           : errf(err, errlen, EQM_ERR_IO, "/dev/null: %s", strerror(errno));
    }
    if (snprintf(p, sizeof p, "%s/config.ini", tr->dir) >= (int)sizeof p)
        return errf(err, errlen, EQM_ERR_INVAL, "run folder path too long");
    if (write_text_atomic(p, tr->cfg_text))
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot write: %s", p, strerror(errno));
    const loader_cfg *lc = config_section_opts(tr->cfg, "loader");
    int rc = machine_write(tr->dir, host_threads(), lc ? (int)lc->workers : 0, dist_size(),
                           (int64_t)tr->li.batch_size * dist_size(), err, errlen);
    if (rc)
        return rc;
    if (resumed && (rc = report_resume_metrics(tr, err, errlen)))
        return rc;
    if (snprintf(p, sizeof p, "%s/metrics.jsonl", tr->dir) >= (int)sizeof p)
        p[0] = 0;
    tr->metrics = fopen(p, resumed ? "a" : "w");
    if (!tr->metrics)
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
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
    return EQM_OK;
}

/* The run folder: a checkpoint of the same config is resumed (--resume: required). */
static int run_resume(trainer *tr, int resume, int *resumed, char *err, size_t errlen)
{
    *resumed = 0;
    tr->cfg_text = config_text(tr->cfg);
    if (!tr->cfg_text)
        return errf(err, errlen, EQM_ERR_NOMEM, "out of memory");
    tr->hash = config_hash_text(tr->cfg_text);
    if (fs_mkdir_p(tr->dir, 0755))
        return errf(err, errlen, EQM_ERR_IO, "%s: cannot create the run folder: %s", tr->dir,
                    strerror(errno));
    ckpt c;
    const char *which = NULL;
    char warn[2048];
    int rc = ckpt_load_latest(tr->dir, tr->hash, &c, &which, warn, sizeof warn, err, errlen);
    if (warn[0])
        host_log(EQM_LOG_WARN, "train", "%s", warn);
    if (rc == EQM_OK) {
        rc = restore_checkpoint(tr, &c, err, errlen);
        ckpt_free(&c);
        if (rc)
            return rc;
        *resumed = 1;
        host_log(EQM_LOG_INFO, "train", "%s: resuming from %s at epoch %lld, step %lld",
                 tr->dir, which, (long long)tr->st.epoch, (long long)tr->st.step);
    } else if (rc == EQM_ERR_NOTFOUND) {
        if (resume)
            return errf(err, errlen, rc, "%s: --resume given but the folder has no checkpoint",
                        tr->dir);
    } else {
        return rc; /* foreign or every checkpoint unreadable: never overwrite them */
    }
    return run_folder_files(tr, *resumed, err, errlen);
}

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

/* The stop signal every rank acts on: under MPI, the largest any rank caught, agreed by a
 * collective at each step boundary, so that all ranks stop after the same step whichever
 * of them the signal reached (mpirun forwards SIGINT/SIGTERM/SIGUSR1 to all; a scheduler
 * or a user may signal one rank). */
static int agreed_stop(trainer *tr, int *sig, char *err, size_t errlen)
{
    *sig = stop_signal;
    if (tr->dg && dist_allreduce_max_int(sig, 1))
        return errf(err, errlen, EQM_ERR_IO, "agreeing on the stop flag: %s", dist_error());
    if (*sig)
        stop_signal = *sig;
    return EQM_OK;
}

/* MPI and a stream: every rank reads the same stream (host/loader/fill.c), so its batches
 * end together; checked at every batch with one small all-reduce, because a rank whose
 * stream ended alone (a shard it could not read, on_bad = skip) would otherwise leave the
 * others waiting in a collective of the next step, or pair different collectives. A rank
 * whose loader failed reports it here too, so that every rank stops with a message. */
static int agreed_batch(trainer *tr, int rc, char *err, size_t errlen)
{
    if (!tr->dg || !tr->streaming)
        return rc;
    int v[3] = {rc == EQM_EOF, rc == EQM_OK, rc != EQM_OK && rc != EQM_EOF};
    if (dist_allreduce_max_int(v, 3))
        return errf(err, errlen, EQM_ERR_IO, "agreeing on the end of the stream: %s",
                    dist_error());
    if (rc != EQM_OK && rc != EQM_EOF)
        return rc; /* this rank's own error (its message is in the loader) */
    if (v[2])
        return errf(err, errlen, EQM_ERR_IO, "epoch %lld batch %lld: another rank could not "
                    "read its batch of the stream (its message is above)",
                    (long long)tr->st.epoch, (long long)tr->st.batch);
    if (v[0] && v[1])
        return errf(err, errlen, EQM_ERR_FORMAT,
                    "epoch %lld batch %lld: the stream ended on some ranks and not on others "
                    "(this rank: %s); every rank reads the same shards, so one of them read "
                    "fewer samples (a shard unreadable on some nodes? see the warnings; set "
                    "data.on_bad = fail to stop at the first unreadable shard)",
                    (long long)tr->st.epoch, (long long)tr->st.batch,
                    rc == EQM_EOF ? "ended" : "went on");
    return rc;
}

/* One epoch from batch tr->st.batch on (the batches before it, done before an
 * interruption, are drawn and skipped: deterministic). *stopped: a signal or
 * train.max_steps ended it early. */
static int run_epoch(trainer *tr, acc_terms *acc, int *stopped, char *err, size_t errlen)
{
    int rc = loader_start_epoch(tr->ld, tr->st.epoch);
    if (rc)
        return errf(err, errlen, rc, "%s", loader_error(tr->ld));
    for (int64_t k = 0; k < tr->st.batch; k++) {
        eqm_batch *b;
        rc = loader_next(tr->ld, &b);
        if (rc)
            return errf(err, errlen, rc, "resume: skipping batch %lld: %s", (long long)k,
                        rc == EQM_EOF ? "epoch ended early" : loader_error(tr->ld));
        loader_release(tr->ld, b);
    }
    if (tr->st.batch == 0) /* else resumed mid-epoch: acc holds its steps so far */
        memset(acc, 0, sizeof *acc);
    for (;;) {
        int sig;
        if ((rc = agreed_stop(tr, &sig, err, errlen)))
            return rc;
        if (sig || (tr->to.max_steps > 0 && tr->st.step >= tr->to.max_steps)) {
            *stopped = 1;
            return EQM_OK;
        }
        /* A stream longer than the epoch (train.steps_per_epoch, or max_samples below
         * the index count) ends the epoch at S batches, where the schedule has it. */
        if (tr->st.batch >= tr->S)
            return EQM_OK;
        eqm_batch *b;
        rc = loader_next(tr->ld, &b);
        int own = rc;
        rc = agreed_batch(tr, rc, err, errlen);
        if (rc != own) { /* the ranks disagree: this rank's batch is not trained */
            if (own == EQM_OK)
                loader_release(tr->ld, b);
            return rc;
        }
        if (rc == EQM_EOF && tr->st.batch == 0)
            return errf(err, errlen, EQM_ERR_FORMAT,
                        "epoch %lld yielded no batch: %s has fewer than %d usable samples "
                        "(missing or unreadable shards? see the warnings above)",
                        (long long)tr->st.epoch, tr->li.source_desc ? tr->li.source_desc : "the dataset",
                        tr->li.batch_size);
        if (rc == EQM_EOF)
            return EQM_OK;
        if (rc)
            return errf(err, errlen, rc, "%s", loader_error(tr->ld));
        rc = train_step(tr, b, acc, err, errlen);
        loader_release(tr->ld, b);
        if (rc)
            return rc;
        if (tr->to.checkpoint_steps > 0 && tr->st.step % tr->to.checkpoint_steps == 0 &&
            (rc = save_checkpoint(tr, err, errlen)))
            return rc;
    }
}

/* Epochs until the end or a stop; after each: the epoch line, online kNN, checkpoint. */
static int run_loop(trainer *tr, acc_terms *acc, int *stopped, char *err, size_t errlen)
{
    int rc;
    while (tr->st.epoch < tr->to.epochs) {
        double e0 = now_s();
        if ((rc = run_epoch(tr, acc, stopped, err, errlen)) || *stopped)
            return rc;
        if (acc->steps)
            report_progress(tr, tr->st.epoch, tr->st.batch, acc_mean(acc, "loss"),
                            sched_warmup_cosine(tr->st.step - 1, tr->oo.lr, tr->W, tr->T,
                                                tr->oo.warmup_start, tr->oo.final_lr),
                            1);
        report_epoch(tr, acc, now_s() - e0);
        tr->st.epoch++;
        tr->st.batch = 0;
        int last = tr->st.epoch >= tr->to.epochs;
        if (tr->writer && tr->eo.knn_every > 0 && tr->st.epoch % tr->eo.knn_every == 0 &&
            !last) { /* MPI: rank 0 alone (eval-mode BN: no collective) */
            eval_acc a;
            char what[64];
            snprintf(what, sizeof what, "epoch %lld", (long long)tr->st.epoch);
            if ((rc = report_knn(tr, what, &a, err, errlen)))
                return rc;
        }
        if (last || (tr->to.checkpoint_every > 0 && tr->st.epoch % tr->to.checkpoint_every == 0))
            if ((rc = save_checkpoint(tr, err, errlen)))
                return rc;
    }
    return EQM_OK;
}

/* Stopped early: checkpoint and how to continue. Returns the exit status. */
static int run_stopped(trainer *tr, char *err, size_t errlen)
{
    int rc = save_checkpoint(tr, err, errlen);
    /* MPI: no rank leaves before rank 0's checkpoint is on disk (a rank that exits with a
     * non-zero status makes mpirun end the others) */
    if (!rc && dist_size() > 1 && dist_barrier())
        rc = errf(err, errlen, EQM_ERR_IO, "after the stop checkpoint: %s", dist_error());
    const char *why = !stop_signal ? "stopped by train.max_steps"
                      : stop_signal == SIGINT ? "interrupted (SIGINT)"
                      : stop_signal == SIGUSR1 ? "interrupted (SIGUSR1)"
                                               : "interrupted (SIGTERM)";
    if (!rc && !tr->writer)
        fprintf(stderr, "equimod train: %s%s at step %lld with every rank\n", rank_tag(), why,
                (long long)tr->st.step);
    if (rc || !tr->writer)
        return rc;
    if (tr->tty)
        fputc('\n', stderr);
    fprintf(stderr,
            "equimod train: %s at step %lld (epoch %lld, batch %lld); checkpoint saved in "
            "%s; continue with: equimod train %s --out %s\n",
            why,
            (long long)tr->st.step, (long long)tr->st.epoch, (long long)tr->st.batch, tr->dir,
            tr->cfg_path, tr->dir);
    if (tr->writer)
        report_svg(tr->dir);
    return EQM_OK;
}

/* The end: report, kNN at the end, the closing line. */
static int run_finish(trainer *tr, const acc_terms *acc, int resumed, double wall0, char *err,
                      size_t errlen)
{
    if (!tr->writer)
        return EQM_OK;
    if (resumed && acc->steps == 0 && tr->st.step > 0 && !tr->to.max_steps)
        fprintf(stderr, "equimod train: %s is already complete (%lld steps)\n", tr->dir,
                (long long)tr->st.step);
    else
        report_final(tr, acc, now_s() - wall0);
    int rc = report_end(tr, now_s() - wall0, err, errlen); /* kNN, linear, end record */
    if (rc)
        return rc;
    if (tr->dg) { /* rank 0's communication (bench/scaling reads this line) */
        dist_grad_stats g = dist_grad_stats_get(tr->dg);
        dist_stats d = dist_stats_get();
        double n = g.steps ? (double)g.steps : 1;
        fprintf(stderr, "equimod train: MPI: gradient all-reduce %.1f ms/step (%.0f%% of it "
                "while backward ran; %.1f of %.1f buckets per step started during backward), "
                "backward then waited %.1f ms/step; SyncBN + NT-Xent + metrics collectives "
                "%.1f ms/step; %.2f MB sent per step by this rank\n",
                g.comm_ns / 1e6 / n, g.comm_ns ? 100.0 * g.overlap_ns / g.comm_ns : 0.0,
                g.early / n, g.buckets / n, g.wait_ns / 1e6 / n,
                (double)(d.ns - g.wait_ns) / 1e6 / n, d.bytes / 1e6 / n);
    }
    fprintf(stderr, "equimod train: done: %lld steps in %.1f s (%.1f img/s); report: %s/report.md\n",
            (long long)tr->st.step, tr->st.elapsed_s,
            tr->st.elapsed_s > 0 ? tr->st.images / tr->st.elapsed_s : 0, tr->dir);
    return EQM_OK;
}

static void run_banner(const trainer *tr, int resumed)
{
    if (!tr->writer)
        return;
    if (dist_size() > 1)
        fprintf(stderr, "equimod train: %d MPI ranks (%d on this machine, %d compute "
                "threads each), %d rows each of the global batch %d, SyncBN %s, gathered "
                "NT-Xent, gradient all-reduce %s\n", dist_size(), dist_local_size(),
                host_threads(),
                tr->li.batch_size, tr->li.batch_size * dist_size(),
                tr->to.sync_bn ? "on" : "off",
                dist_grad_mode_of(tr->dg) == DIST_GRAD_THREAD ? "on a communication thread"
                : dist_grad_mode_of(tr->dg) == DIST_GRAD_TEST ? "polled with MPI_Test"
                                                              : "after backward");
    fprintf(stderr,
            "equimod train: %s -> %s\n  %s%s on %s, backbone %s (D=%d), %lld samples, batch "
            "%d, %lld steps/epoch x %lld epochs%s\n",
            tr->cfg_path, tr->dir, tr->m.mod[EQM_SLOT_METHOD].plugin->desc.name,
            tr->use_equimod ? "+equimod" : "", tr->li.source_desc ? tr->li.source_desc : "?",
            tr->m.mod[EQM_SLOT_BACKBONE].plugin->desc.name, tr->m.mod[EQM_SLOT_BACKBONE].out_dim,
            (long long)tr->li.n_samples, tr->li.batch_size, (long long)tr->S,
            (long long)tr->to.epochs, resumed ? " (resumed)" : "");
    if (tr->to.precision == 1)
        fprintf(stderr, "  precision bf16: conv and linear products on %s, fp32 accumulation "
                "and fp32 weights\n", nn_bf16_kernel_name());
}

/* Training with SIGINT/SIGTERM/SIGUSR1 caught (they stop it at the next step, with a
 * checkpoint; SIGUSR1 because mpirun forwards it without the SIGKILL that follows its
 * SIGINT/SIGTERM after a second, and Slurm's --signal can send it ahead of a time limit). */
static int run_train(trainer *tr, int resumed, double wall0, int *status, char *err,
                     size_t errlen)
{
    struct sigaction sa, old_int, old_term, old_usr1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal kills at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGUSR1, &sa, &old_usr1);
    stop_signal = 0;
    int rc = EQM_OK, stopped = 0;
    acc_terms acc = tr->resume_acc; /* zero unless resumed mid-epoch */
    if (!resumed && tr->eo.knn_baseline && tr->writer) {
        eval_acc a;
        rc = report_knn(tr, "untrained", &a, err, errlen);
    }
    if (!rc)
        rc = run_loop(tr, &acc, &stopped, err, errlen);
    if (!rc) {
        fflush(tr->metrics);
        rc = stopped ? run_stopped(tr, err, errlen)
                     : run_finish(tr, &acc, resumed, wall0, err, errlen);
        *status = stopped && stop_signal ? 130 : 0;
    }
    if (rc && tr->tty)
        fputc('\n', stderr);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    return rc;
}

int train_main(const char *config, char **sets, int n_sets, const char *out_dir, int resume)
{
    trainer T0;
    trainer *tr = &T0;
    memset(tr, 0, sizeof *tr);
    tr->writer = dist_rank() == 0;
    char err[2048] = "";
    double wall0 = now_s();
    int resumed = 0, status = 1;
    int rc = run_resolve(tr, config, sets, n_sets, out_dir, err, sizeof err);
    if (!rc)
        rc = run_open(tr, err, sizeof err);
    if (!rc)
        rc = run_build(tr, err, sizeof err);
    if (!rc)
        rc = run_resume(tr, resume, &resumed, err, sizeof err);
    if (!rc) {
        tr->tty = isatty(2);
        run_banner(tr, resumed);
        rc = run_train(tr, resumed, wall0, &status, err, sizeof err);
    }
    if (rc && rc != RUN_REPORTED) {
        fprintf(stderr, "equimod train: %serror: %s\n", rank_tag(), err[0] ? err : eqm_status_str(rc));
        status = 1;
    }
    dist_grad_destroy(tr->dg);
    for (int s = 0; s < EQM_SLOT_COUNT; s++)
        free(tr->gmark[s]);
    tr->dg = NULL;
    dist_nn_set(0);
    trainer_free(tr);
    return status;
}
