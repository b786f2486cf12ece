/* tests/backbone/resnet_forward.c: equimod's forward of a backbone file, for torch_load.py.
 *
 *   resnet_forward WEIGHTS.safetensors IO.safetensors OUT.safetensors [key=value]...
 *
 * Builds backbone/resnet (loaded by dlopen like check_backbone) with the given options,
 * imports WEIGHTS strictly (st_import_backbone), reads IO's "input_nhwc" (N, H, W, 3),
 * and writes OUT with "out_eval" (eval mode: running statistics) then "out_train" (training
 * mode: batch statistics), both (N, D). Exit 0 on success, 1 with a message otherwise.
 * Left out: every other plugin kind; this is a test helper, not a user command.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "train/model.h"
#include "train/safetensors.h"

static int die(const char *msg)
{
    fprintf(stderr, "resnet_forward: %s\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    char err[4096];
    if (argc < 4)
        return die("usage: resnet_forward WEIGHTS IO OUT [key=value]...");
    eqm_registry *reg = registry_create();
    if (!reg || registry_scan(reg, NULL, 0) < 1)
        return die("no plugins found (set EQUIMOD_PLUGIN_PATH to the build's plugin-dir)");
    const eqm_plugin *p = registry_find(reg, EQM_KIND_BACKBONE, "resnet");
    if (!p)
        return die("no backbone/resnet plugin");
    void *opts = calloc(1, p->desc.params_size);
    for (const eqm_param_spec *s = p->desc.params; s && s->key; s++)
        if (param_parse(s, s->def ? s->def : "", (char *)opts + s->offset, err, sizeof err))
            return die(err);
    for (int i = 4; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        const eqm_param_spec *s = p->desc.params;
        while (eq && s->key && strncmp(s->key, argv[i], (size_t)(eq - argv[i])))
            s++;
        if (!eq || !s->key)
            return die("options are key=value with a resnet option key");
        if (param_parse(s, eq + 1, (char *)opts + s->offset, err, sizeof err))
            return die(err);
    }
    st_file *io = NULL;
    if (st_read(argv[2], &io, err, sizeof err))
        return die(err);
    const st_tensor *in = st_find(io, "input_nhwc");
    if (!in || in->ndim != 4 || in->shape[3] != 3 || strcmp(in->dtype, "F32"))
        return die("IO file needs input_nhwc F32 (N, H, W, 3)");
    int N = (int)in->shape[0], H = (int)in->shape[1], W = (int)in->shape[2];
    float *x = malloc(in->numel * sizeof *x);
    st_to_f32(in, x, in->numel, err, sizeof err);
    eqm_model m;
    model_reset(&m);
    eqm_module_cfg cfg = {sizeof cfg, H, W, 3, 0, 0, N, 0};
    if (model_add_module(&m, p, opts, &cfg, err, sizeof err) ||
        model_finalize(&m, err, sizeof err) || model_init(&m, 0, err, sizeof err) ||
        st_import_backbone(&m, argv[1], err, sizeof err))
        return die(err);
    int D = m.mod[0].out_dim;
    float *oe = malloc((size_t)N * D * sizeof *oe), *ot = malloc((size_t)N * D * sizeof *ot);
    eqm_module_io mio;
    memset(&mio, 0, sizeof mio);
    mio.size = sizeof mio, mio.rows = N, mio.in = x, mio.out = oe, mio.train = 0;
    if (m.mod[0].ops->forward(m.mod[0].self, &mio))
        return die(host_ctx_error(m.mod[0].ctx));
    mio.out = ot, mio.train = 1;
    if (m.mod[0].ops->forward(m.mod[0].self, &mio))
        return die(host_ctx_error(m.mod[0].ctx));
    st_writer *w = st_writer_create();
    int64_t shape[2] = {N, D};
    if (st_writer_add(w, "out_eval", "F32", 2, shape, oe, err, sizeof err) ||
        st_writer_add(w, "out_train", "F32", 2, shape, ot, err, sizeof err) ||
        st_writer_write(w, argv[3], err, sizeof err))
        return die(err);
    st_writer_destroy(w);
    st_close(io);
    model_destroy(&m);
    registry_destroy(reg);
    free(opts), free(x), free(oe), free(ot);
    return 0;
}
