/* plugins/common/mlp.c: MLP heads composed from api->nn ops (see mlp.h).
 *
 * Activation layout for R rows, per layer l of width C (in order):
 *     lin   (R, C)   Linear output
 *     bno   (R, C)   BN output (after the fused ReLU for hidden blocks)   [if BN]
 *     save  (2C)     BN batch mean and inverse std                        [if BN]
 * Backward scratch (separate, shareable): three (R, max_c) gradient buffers, two that
 * alternate as the gradient w.r.t. a layer's output, one for the gradient w.r.t. the
 * Linear output.
 * The layout depends on R only, so any R <= the R used for sizing fits.
 */
#include "mlp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

int mlp_parse_widths(const char *spec, int *widths, int max_widths, char *err, size_t errlen)
{
    int n = 0;
    if (!spec || !*spec || !strcmp(spec, "none"))
        return 0;
    const char *s = spec;
    while (*s) {
        char *end;
        errno = 0;
        if (*s < '0' || *s > '9') {
            snprintf(err, errlen, "layer spec \"%s\": expected a width at \"%s\" "
                     "(write widths separated by '-', e.g. \"2048-2048\")", spec, s);
            return -1;
        }
        long v = strtol(s, &end, 10);
        if (errno || v < 1 || v > 65536) {
            snprintf(err, errlen, "layer spec \"%s\": width %.*s is out of range 1..65536",
                     spec, (int)(end - s), s);
            return -1;
        }
        if (n == max_widths) {
            snprintf(err, errlen, "layer spec \"%s\": more than %d layers", spec, max_widths);
            return -1;
        }
        widths[n++] = (int)v;
        s = end;
        if (*s == '-')
            s++;
        else if (*s) {
            snprintf(err, errlen, "layer spec \"%s\": unexpected '%c' (widths are separated "
                     "by '-')", spec, *s);
            return -1;
        }
    }
    return n;
}

static int add_tensor(mlp *m, const char *prefix, int seq, const char *what, int ndim, int d0,
                      int d1, uint32_t flags)
{
    int i = m->n_tensors++;
    snprintf(m->name[i], MLP_NAME_LEN, "%s%s%d.%s", prefix, *prefix ? "." : "", seq, what);
    m->ndim[i] = ndim;
    m->shape[i][0] = d0;
    m->shape[i][1] = d1;
    m->flags[i] = flags;
    return i;
}

static void add_layer(mlp *m, const char *prefix, int *seq, int c_in, int c_out, int bias,
                      int bn, int relu, uint32_t extra)
{
    mlp_layer *L = &m->layer[m->n_layers++];
    L->c_in = c_in;
    L->c_out = c_out;
    L->bias = bias;
    L->bn = bn;
    L->relu = relu;
    L->t_w = add_tensor(m, prefix, *seq, "weight", 2, c_out, c_in, EQM_T_DECAY | extra);
    L->t_b = bias ? add_tensor(m, prefix, *seq, "bias", 1, c_out, 0, extra) : -1;
    (*seq)++;
    L->t_gamma = L->t_beta = L->t_rm = L->t_rv = -1;
    if (bn) {
        if (bn == MLP_BN_AFFINE) {
            L->t_gamma = add_tensor(m, prefix, *seq, "weight", 1, c_out, 0, extra);
            L->t_beta = add_tensor(m, prefix, *seq, "bias", 1, c_out, 0, extra);
        }
        L->t_rm = add_tensor(m, prefix, *seq, "running_mean", 1, c_out, 0,
                             EQM_T_BUFFER | extra);
        L->t_rv = add_tensor(m, prefix, *seq, "running_var", 1, c_out, 0,
                             EQM_T_BUFFER | extra);
        (*seq)++;
    }
    if (relu)
        (*seq)++;
    if (c_out > m->max_c)
        m->max_c = c_out;
}

int mlp_build(mlp *m, const char *prefix, int in_dim, const int *hidden, int n_hidden,
              int out_dim, int final_bias, int final_bn, uint32_t extra_flags, char *err,
              size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (in_dim < 1 || out_dim < 1) {
        snprintf(err, errlen, "%s: input width %d and output width %d must be >= 1", prefix,
                 in_dim, out_dim);
        return EQM_ERR_INVAL;
    }
    if (n_hidden < 0 || n_hidden + 1 > MLP_MAX_LAYERS) {
        snprintf(err, errlen, "%s: %d hidden layers; at most %d are supported", prefix,
                 n_hidden, MLP_MAX_LAYERS - 1);
        return EQM_ERR_INVAL;
    }
    if (final_bn < MLP_BN_NONE || final_bn > MLP_BN_PLAIN) {
        snprintf(err, errlen, "%s: bad final BN kind %d", prefix, final_bn);
        return EQM_ERR_INVAL;
    }
    if (strlen(prefix) > MLP_NAME_LEN - 24) {
        snprintf(err, errlen, "tensor prefix \"%s\" is too long", prefix);
        return EQM_ERR_INVAL;
    }
    m->in_dim = in_dim;
    m->out_dim = out_dim;
    int seq = 0, c = in_dim;
    for (int i = 0; i < n_hidden; i++) {
        if (hidden[i] < 1) {
            snprintf(err, errlen, "%s: hidden width %d must be >= 1", prefix, hidden[i]);
            return EQM_ERR_INVAL;
        }
        add_layer(m, prefix, &seq, c, hidden[i], 0, MLP_BN_AFFINE, 1, extra_flags);
        c = hidden[i];
    }
    add_layer(m, prefix, &seq, c, out_dim, final_bias, final_bn, 0, extra_flags);
    return EQM_OK;
}

void mlp_tensor_info(const mlp *m, int i, eqm_tensor_info *info)
{
    memset(info, 0, sizeof *info);
    info->name = m->name[i];
    info->ndim = m->ndim[i];
    info->shape[0] = m->shape[i][0];
    info->shape[1] = m->ndim[i] > 1 ? m->shape[i][1] : 0;
    info->flags = m->flags[i];
}

size_t mlp_act_floats(const mlp *m, int R)
{
    size_t n = 0;
    for (int l = 0; l < m->n_layers; l++) {
        size_t C = (size_t)m->layer[l].c_out;
        n += (size_t)R * C;
        if (m->layer[l].bn)
            n += (size_t)R * C + 2 * C;
    }
    return n;
}

size_t mlp_scratch_floats(const mlp *m, int R) { return 3 * (size_t)R * (size_t)m->max_c; }

static float uniform(const eqm_host_api *api, eqm_rng *rng, float bound)
{
    return (float)((2.0 * api->rng_uniform(rng) - 1.0) * bound);
}

void mlp_init(const mlp *m, const eqm_host_api *api, eqm_rng *rng, float *const *params)
{
    for (int l = 0; l < m->n_layers; l++) {
        const mlp_layer *L = &m->layer[l];
        float bound = 1.0f / sqrtf((float)L->c_in);
        size_t nw = (size_t)L->c_out * (size_t)L->c_in;
        for (size_t k = 0; k < nw; k++)
            params[L->t_w][k] = uniform(api, rng, bound);
        if (L->bias)
            for (int k = 0; k < L->c_out; k++)
                params[L->t_b][k] = uniform(api, rng, bound);
        if (L->bn) {
            for (int k = 0; k < L->c_out; k++) {
                if (L->bn == MLP_BN_AFFINE) {
                    params[L->t_gamma][k] = 1.0f;
                    params[L->t_beta][k] = 0.0f;
                }
                params[L->t_rm][k] = 0.0f;
                params[L->t_rv][k] = 1.0f;
            }
        }
    }
}

/* Pointers of layer l's forward buffers inside act. */
typedef struct layer_bufs {
    float *lin, *bno, *save;
} layer_bufs;

static void layer_buffers(const mlp *m, const float *act, int R, int l, layer_bufs *b)
{
    float *p = (float *)act; /* the forward writes through these; backward only reads */
    for (int k = 0;; k++) {
        size_t C = (size_t)m->layer[k].c_out;
        b->lin = p;
        p += (size_t)R * C;
        b->bno = b->save = NULL;
        if (m->layer[k].bn) {
            b->bno = p;
            p += (size_t)R * C;
            b->save = p;
            p += 2 * C;
        }
        if (k == l)
            return;
    }
}

const float *mlp_output(const mlp *m, const float *act, int R)
{
    layer_bufs b;
    int l = m->n_layers - 1;
    layer_buffers(m, act, R, l, &b);
    return m->layer[l].bn ? b.bno : b.lin;
}

static void bn_shape(const mlp_layer *L, int R, int train, eqm_bn_shape *s)
{
    s->M = R;
    s->C = L->c_out;
    s->train = train;
    s->affine = L->bn == MLP_BN_AFFINE;
    s->relu = L->relu;
    s->eps = BN_EPS;
    s->momentum = BN_MOMENTUM;
}

static float *opt(float *const *v, int i) { return i >= 0 && v ? v[i] : NULL; }

int mlp_forward(const mlp *m, const eqm_host_api *api, eqm_host *h, float *const *params,
                float *act, int R, int train, const float *in, const float **out)
{
    const eqm_nn_api *nn = api->nn;
    const float *x = in;
    for (int l = 0; l < m->n_layers; l++) {
        const mlp_layer *L = &m->layer[l];
        layer_bufs b;
        layer_buffers(m, act, R, l, &b);
        eqm_linear_shape ls = {R, L->c_in, L->c_out};
        int rc = nn->linear_forward(h, &ls, b.lin, x, params[L->t_w], opt(params, L->t_b));
        if (rc < 0)
            return rc;
        x = b.lin;
        if (L->bn) {
            eqm_bn_shape bs;
            bn_shape(L, R, train, &bs);
            rc = nn->batchnorm_forward(h, &bs, b.bno, b.lin, opt(params, L->t_gamma),
                                       opt(params, L->t_beta), params[L->t_rm],
                                       params[L->t_rv], b.save);
            if (rc < 0)
                return rc;
            x = b.bno;
        }
    }
    *out = x;
    return EQM_OK;
}

int mlp_backward(const mlp *m, const eqm_host_api *api, eqm_host *h, float *const *params,
                 float *const *grads, const float *act, float *scratch, int R,
                 const float *in, const float *dout, float *din)
{
    const eqm_nn_api *nn = api->nn;
    size_t RC = (size_t)R * (size_t)m->max_c;
    float *gbuf = scratch;
    float *ping[2] = {gbuf, gbuf + RC};
    float *glin = gbuf + 2 * RC;
    const float *g = dout;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        const mlp_layer *L = &m->layer[l];
        layer_bufs b;
        layer_buffers(m, act, R, l, &b);
        const float *x_in = in;
        if (l > 0) {
            layer_bufs p;
            layer_buffers(m, act, R, l - 1, &p);
            x_in = m->layer[l - 1].bn ? p.bno : p.lin;
        }
        const float *dlin = g;
        int rc;
        if (L->bn) {
            eqm_bn_shape bs;
            bn_shape(L, R, 1, &bs);
            memset(glin, 0, (size_t)R * (size_t)L->c_out * sizeof(float));
            rc = nn->batchnorm_backward(h, &bs, glin, opt(grads, L->t_gamma),
                                        opt(grads, L->t_beta), g, b.lin, b.bno,
                                        opt(params, L->t_gamma), b.save);
            if (rc < 0)
                return rc;
            dlin = glin;
        }
        float *dx = din;
        if (l > 0) {
            dx = ping[l & 1];
            memset(dx, 0, (size_t)R * (size_t)L->c_in * sizeof(float));
        }
        eqm_linear_shape ls = {R, L->c_in, L->c_out};
        rc = nn->linear_backward(h, &ls, dx, opt(grads, L->t_w), opt(grads, L->t_b), dlin,
                                 x_in, params[L->t_w]);
        if (rc < 0)
            return rc;
        g = dx;
    }
    return EQM_OK;
}
