/* host/nn/nn_api.c: the eqm_nn_api table (sdk nn.h) offered to plugins as api->nn, and
 * the small helpers every op file shares (parallel loop, error reporting).
 * The table overrides the weak nn_api_table() default of host/api.c.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "core.h"
#include "nn/nn_internal.h"

void nn_parallel(eqm_host *h, size_t n, size_t grain, eqm_parallel_fn fn, void *ctx)
{
    host_api()->parallel_for(h, n, grain, fn, ctx);
}

int nn_threads(void) { return host_threads(); }

int nn_inval(eqm_host *h, const char *op, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (h)
        host_ctx_set_error(h, EQM_ERR_INVAL, "nn.%s: %s", op, msg);
    else
        host_log(EQM_LOG_ERROR, "nn", "%s: %s", op, msg);
    return EQM_ERR_INVAL;
}

static const eqm_nn_api table = {
    .size = sizeof(eqm_nn_api),
    .conv2d_forward = nn_conv2d_forward,
    .conv2d_backward = nn_conv2d_backward,
    .batchnorm_forward = nn_batchnorm_forward,
    .batchnorm_backward = nn_batchnorm_backward,
    .relu_forward = nn_relu_forward,
    .relu_backward = nn_relu_backward,
    .maxpool_forward = nn_maxpool_forward,
    .maxpool_backward = nn_maxpool_backward,
    .avgpool_forward = nn_avgpool_forward,
    .avgpool_backward = nn_avgpool_backward,
    .linear_forward = nn_linear_forward,
    .linear_backward = nn_linear_backward,
    .add_forward = nn_add_forward,
    .concat_forward = nn_concat_forward,
    .concat_backward = nn_concat_backward,
    .l2norm_forward = nn_l2norm_forward,
    .l2norm_backward = nn_l2norm_backward,
    .ntxent_scratch_floats = nn_ntxent_scratch_floats,
    .ntxent_forward = nn_ntxent_forward,
    .ntxent_backward = nn_ntxent_backward,
    .cosine_loss_forward = nn_cosine_loss_forward,
    .cosine_loss_backward = nn_cosine_loss_backward,
    .softmax_xent_forward = nn_softmax_xent_forward,
    .softmax_xent_backward = nn_softmax_xent_backward,
    .sgemm = nn_sgemm_api,
    .batchnorm_backward_ex = nn_batchnorm_backward_ex,
    .conv2d_forward_stats = nn_conv2d_forward_stats,
    .batchnorm_forward_ex = nn_batchnorm_forward_ex,
    .batchnorm_forward_store = nn_batchnorm_forward_store,
};

const eqm_nn_api *nn_api_table(void) { return &table; }
