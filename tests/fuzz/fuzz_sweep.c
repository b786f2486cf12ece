/* tests/fuzz/fuzz_sweep.c: the sweep file reader (host/sweep/plan.c).
 *
 * Input: a sweep file (INI). It sits in the harness's scratch folder beside base.ini, a
 * small valid base config (written once; the seeds say `base = base.ini`), so that
 * sweep_plan_read loads, resolves and hashes a real base against the real plugins.
 * Invariants: a refusal always comes with a message; a plan that is read has at least one
 * run, as many as the product of its axes' values (without [sample]), or at most n times
 * the seeds (with it); run folder names are unique, non-empty, never "." or "..", and
 * hold no '/' (a run folder stays inside the sweep folder); every run carries the fixed
 * overrides first and one --set per axis key; sweep.json written by sweep_plan_bind_dir
 * reads back (sweep_plan_load_json) with the same runs, --set lists and plan hash, and
 * binding the same folder again accepts it; sweep_validate (small plans only) either
 * passes or refuses with a message. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "fuzz.h"
#include "sweep/sweep.h"

static eqm_registry *reg;

static const char base_ini[] =
    "[run]\nseed = 1\n\n[data]\nplugin = cifar10\ntrain_batches = 1\ntest_set = exact1000\n\n"
    "[loader]\nbatch_size = 64\n\n[views]\noriginal = norm\nview1 = crop flip norm\n"
    "view2 = crop flip norm\n\n[augment.crop]\nplugin = random_resized_crop\nsize = 32\n\n"
    "[augment.flip]\nplugin = horizontal_flip\n\n[augment.norm]\nplugin = normalize\n\n"
    "[backbone]\nplugin = resnet\nwidth = 0.125\n\n[method]\nplugin = simclr\n\n"
    "[train]\nepochs = 1\nequimod = true\n";

static void init(void)
{
    if (reg)
        return;
    reg = fuzz_registry();
    fuzz_file("base.ini", base_ini, sizeof base_ini - 1);
}

static void check_names(const sweep_plan *p)
{
    for (int r = 0; r < p->n_runs; r++) {
        const char *n = p->runs[r].name;
        if (!n || !*n || !strcmp(n, ".") || !strcmp(n, "..") || strchr(n, '/'))
            fuzz_fail("run %d has a folder name that leaves the sweep folder: '%s'", r,
                      n ? n : "(null)");
        for (int q = 0; q < r; q++)
            if (!strcmp(n, p->runs[q].name))
                fuzz_fail("runs %d and %d have the same folder name '%s'", q, r, n);
        int keys = 0;
        for (int a = 0; a < p->n_axes; a++)
            keys += p->axes[a].n_keys;
        if (p->runs[r].n_sets != p->n_fixed + keys)
            fuzz_fail("run '%s' has %d --set, want %d fixed + %d axis keys", n,
                      p->runs[r].n_sets, p->n_fixed, keys);
        for (int k = 0; k < p->n_fixed; k++)
            if (strcmp(p->runs[r].sets[k], p->fixed[k]))
                fuzz_fail("run '%s': --set %d is '%s', want the fixed '%s'", n, k,
                          p->runs[r].sets[k], p->fixed[k]);
    }
}

static void check_count(const sweep_plan *p)
{
    double prod = 1, seeds = 1;
    for (int a = 0; a < p->n_axes; a++) {
        prod *= p->axes[a].n_values;
        if (p->axes[a].is_seed)
            seeds *= p->axes[a].n_values;
    }
    if (p->n_runs < 1)
        fuzz_fail("a plan with no run was accepted");
    if (!p->sample_n && p->n_runs != prod)
        fuzz_fail("%d runs, but the axes' product is %.0f", p->n_runs, prod);
    if (p->sample_n && p->n_runs > p->sample_n * seeds)
        fuzz_fail("%d runs from [sample] n = %d x %.0f seeds", p->n_runs, p->sample_n, seeds);
}

static void check_json_round_trip(const sweep_plan *p)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/sweepdir", fuzz_dir());
    char json[4300];
    snprintf(json, sizeof json, "%s/sweep.json", dir);
    unlink(json);
    rmdir(dir);
    char err[2048] = "";
    if (sweep_plan_bind_dir(p, dir, err, sizeof err))
        fuzz_fail("sweep_plan_bind_dir on a fresh folder failed: %s", err);
    if (sweep_plan_bind_dir(p, dir, err, sizeof err))
        fuzz_fail("binding the same plan to its own folder again was refused: %s", err);
    sweep_plan q;
    memset(&q, 0, sizeof q);
    if (sweep_plan_load_json(&q, dir, err, sizeof err))
        fuzz_fail("the sweep.json just written does not read back: %s", err);
    if (q.n_runs != p->n_runs || q.plan_hash != p->plan_hash)
        fuzz_fail("sweep.json read back: %d runs, hash %016llx; written: %d runs, hash %016llx",
                  q.n_runs, (unsigned long long)q.plan_hash, p->n_runs,
                  (unsigned long long)p->plan_hash);
    for (int r = 0; r < p->n_runs; r++) {
        if (strcmp(q.runs[r].name, p->runs[r].name) || q.runs[r].n_sets != p->runs[r].n_sets)
            fuzz_fail("sweep.json run %d read back as '%s', written as '%s'", r, q.runs[r].name,
                      p->runs[r].name);
        for (int k = 0; k < p->runs[r].n_sets; k++)
            if (strcmp(q.runs[r].sets[k], p->runs[r].sets[k]))
                fuzz_fail("sweep.json run '%s' --set %d read back as '%s', written as '%s'",
                          p->runs[r].name, k, q.runs[r].sets[k], p->runs[r].sets[k]);
    }
    sweep_plan_free(&q);
    unlink(json);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    char err[2048] = "";
    const char *path = fuzz_file("sweep.ini", data, size);
    sweep_plan p;
    memset(&p, 0, sizeof p);
    int rc = sweep_plan_read(&p, path, reg, err, sizeof err);
    if (rc) {
        if (!err[0])
            fuzz_fail("sweep_plan_read failed (%d) without a message", rc);
        sweep_plan_free(&p);
        return 0;
    }
    check_count(&p);
    check_names(&p);
    check_json_round_trip(&p);
    if (p.n_runs <= 4) {
        err[0] = 0;
        rc = sweep_validate(&p, reg, err, sizeof err);
        if (rc && !err[0])
            fuzz_fail("sweep_validate failed (%d) without a message", rc);
    }
    sweep_plan_free(&p);
    return 0;
}
