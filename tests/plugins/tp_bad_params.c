/* tests/plugins/tp_bad_params.c: one file, many descriptors: each test_badp_* has a
 * malformed option table (one defect each), and test_params_ok is valid, so the file must
 * stay loaded with exactly that plugin. */
#include "tp_common.h"

static const eqm_augment_ops aug_ops = TP_AUGMENT_OPS;

#define ROW(key, type, def, lo, hi, ch) {key, type, offsetof(tp_opts, count), def, lo, hi, ch, "h"}
#define ROWS(name, ...) static const eqm_param_spec name[] = {__VA_ARGS__, TP_SPEC_END};
ROWS(p_keychars, ROW("Bad Key", EQM_PARAM_INT, "1", 1, 10, NULL))
ROWS(p_dupkey, ROW("count", EQM_PARAM_INT, "1", 1, 10, NULL),
     ROW("count", EQM_PARAM_INT, "2", 1, 10, NULL))
ROWS(p_type, ROW("count", 99, "1", 1, 10, NULL))
ROWS(p_defbad, ROW("count", EQM_PARAM_INT, "abc", 1, 10, NULL))
ROWS(p_defrange, ROW("count", EQM_PARAM_INT, "20", 1, 10, NULL))
ROWS(p_nochoices, {"mode", EQM_PARAM_ENUM, offsetof(tp_opts, mode), "a", 1, 0, NULL, "h"})
ROWS(p_reserved, ROW("plugin", EQM_PARAM_INT, "1", 1, 10, NULL))
ROWS(p_offset, {"far", EQM_PARAM_FLOAT, sizeof(tp_opts), "0", 1, 0, NULL, "h"})
ROWS(p_ok, TP_SPEC_ROWS)

#define DESC(var, name, spec)                                                         \
    static const eqm_plugin_desc var = {EQM_DESC_HEADER(EQM_KIND_AUGMENT), name, "1", "", \
                                        spec, sizeof(tp_opts), &aug_ops};
DESC(d_keychars, "test_badp_keychars", p_keychars)
DESC(d_dupkey, "test_badp_dupkey", p_dupkey)
DESC(d_type, "test_badp_type", p_type)
DESC(d_defbad, "test_badp_defbad", p_defbad)
DESC(d_defrange, "test_badp_defrange", p_defrange)
DESC(d_nochoices, "test_badp_nochoices", p_nochoices)
DESC(d_reserved, "test_badp_reserved", p_reserved)
DESC(d_offset, "test_badp_offset", p_offset)
DESC(d_ok, "test_params_ok", p_ok)

static const eqm_plugin_desc *const descs[] = {&d_keychars, &d_dupkey,    &d_type,
                                               &d_defbad,   &d_defrange,  &d_nochoices,
                                               &d_reserved, &d_offset,    &d_ok};
EQM_PLUGIN_ENTRY(descs)
