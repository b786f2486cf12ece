/* tests/plugins/tp_a_valid.c: a valid plugin file with one descriptor of every kind
 * (augment "test_identity" with an option of every type; fixture dataset/backbone/method/
 * equimod "test_tiny"). Loader and config tests load it for real with dlopen. */
#include "tp_common.h"

static const eqm_param_spec spec[] = {TP_SPEC_ROWS, TP_SPEC_END};

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;
static const eqm_module_ops mod_ops = TP_MODULE_OPS;
static const eqm_dataset_ops ds_ops = TP_DATASET_OPS;

static const eqm_plugin_desc identity = {
    EQM_DESC_HEADER(EQM_KIND_AUGMENT), "test_identity", "1.2.3",
    "copies the image unchanged (loader test fixture)", spec, sizeof(tp_opts), &aug_ops};
static const eqm_plugin_desc dataset = {
    EQM_DESC_HEADER(EQM_KIND_DATASET), "test_tiny", "0.1", "dataset fixture", spec,
    sizeof(tp_opts), &ds_ops};
static const eqm_plugin_desc backbone = {
    EQM_DESC_HEADER(EQM_KIND_BACKBONE), "test_tiny", "0.1", "backbone fixture", spec,
    sizeof(tp_opts), &mod_ops};
static const eqm_plugin_desc method = {
    EQM_DESC_HEADER(EQM_KIND_METHOD), "test_tiny", "0.1", "method fixture", NULL, 0,
    &mod_ops};
static const eqm_plugin_desc equimod = {
    EQM_DESC_HEADER(EQM_KIND_EQUIMOD), "test_tiny", "0.1", "equimod fixture", spec,
    sizeof(tp_opts), &mod_ops};

static const eqm_plugin_desc *const descs[] = {&identity, &dataset, &backbone, &method,
                                               &equimod};
EQM_PLUGIN_ENTRY(descs)
