/* host/train/safetensors.h: reading and writing .safetensors files (Hugging Face format),
 * the interchange with PyTorch (export/import of backbones, reference fixtures of tests).
 *
 * Format: u64 little-endian N, then N bytes of UTF-8 JSON
 *     {"__metadata__": {"k": "v", ...},            (optional, string values only)
 *      "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * then the data region; offsets are relative to its start, end - begin must equal
 * numel * sizeof(dtype), little-endian, row-major (C order). The JSON is parsed with jansson
 * (json_loadb, JSON_REJECT_DUPLICATES); errors name the file and the JSON position.
 * Writing pads the header with spaces to a multiple of 8 bytes (as the reference writer)
 * and lays the data out back to back with no holes (the reference reader refuses holes),
 * larger element sizes first and otherwise in the order added, so that every tensor
 * starts aligned to its element size. Reading checks exactly that coverage too.
 *
 * Dtypes handled: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL (sizes known; only the
 * bytes are exposed, conversion is the caller's). Others are refused.
 * Left out: memory mapping (the file is read whole), big-endian hosts.
 * Ownership: st_read returns an st_file that owns the file bytes; tensor names and data
 * pointers point into it until st_close. A writer borrows each tensor's data until
 * st_writer_write returns; names and metadata are copied.
 * Threading: objects are not shared; no global state.
 * Returns: EQM_OK, EQM_ERR_IO, EQM_ERR_FORMAT (malformed file; the message says where),
 * EQM_ERR_UNSUPPORTED (dtype), EQM_ERR_NOMEM, EQM_ERR_INVAL; err gets one line.
 */
#ifndef EQM_HOST_TRAIN_SAFETENSORS_H
#define EQM_HOST_TRAIN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    const char *name;          /* owned by the st_file */
    char dtype[8];             /* "F32", "I64", ... */
    size_t elem_size;          /* bytes per element */
    int ndim;                  /* 0 = scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const void *data;          /* numel * elem_size bytes, inside the file buffer; may be
                                  unaligned for the element type: memcpy before use */
} st_tensor;

typedef struct st_file st_file;

int st_read(const char *path, st_file **out, char *err, size_t errlen);
/* Parse from memory (copied). `what` names the source in messages. */
int st_parse(const void *bytes, size_t n, const char *what, st_file **out, char *err,
             size_t errlen);
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);           /* file order of offsets */
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent */
const char *st_metadata(const st_file *f, const char *key);  /* NULL if absent */
void st_close(st_file *f);

/* Copy a tensor's data as float32 (dtype F32 or F64 converted). EQM_ERR_UNSUPPORTED for
 * other dtypes, EQM_ERR_INVAL if n != numel. */
int st_to_f32(const st_tensor *t, float *dst, size_t n, char *err, size_t errlen);

typedef struct st_writer st_writer;

st_writer *st_writer_create(void);
/* Add a tensor (name unique; the data is borrowed until st_writer_write). */
int st_writer_add(st_writer *w, const char *name, const char *dtype, int ndim,
                  const int64_t *shape, const void *data, char *err, size_t errlen);
int st_writer_meta(st_writer *w, const char *key, const char *value);
/* Write atomically: PATH.tmp then rename. */
int st_writer_write(st_writer *w, const char *path, char *err, size_t errlen);
void st_writer_destroy(st_writer *w);

/* Element size of a dtype name, 0 if unknown. */
size_t st_dtype_size(const char *dtype);

/* ---- Backbone interchange with PyTorch (the model side; used by `equimod export`) ----
 * Names are the module's tensor names (torchvision's for resnet). Layout conversion: every
 * 4-D tensor is a conv weight, OHWI in equimod and OIHW in PyTorch, and is transposed; other
 * tensors are copied. For each tensor NAME.running_var (a BN), NAME.num_batches_tracked is
 * written as an I64 scalar with value `num_batches_tracked` (0 for a fresh model, the
 * number of training steps for a trained one) and accepted (ignored) on import. */
struct eqm_model;
/* Write the backbone (slot 0) of a finalized model. `meta` is NULL or a NULL-terminated
 * key, value, key, value... list added to __metadata__ (plus "format": "pt"). */
int st_export_backbone(const struct eqm_model *m, const char *path, int64_t num_batches_tracked,
                       const char *const *meta, char *err, size_t errlen);
/* Overwrite the backbone's params from a file, strictly (PyTorch strict=True): every
 * tensor must be present with the right shape and a float dtype; an unknown tensor is an
 * error. The message names every missing/extra/mis-shaped tensor (up to a limit). On
 * error the params may be partly overwritten only if the failure is EQM_ERR_IO/NOMEM;
 * validation happens before any copy. Does not touch the BYOL target (call
 * model_copy_to_target if wanted). */
int st_import_backbone(struct eqm_model *m, const char *path, char *err, size_t errlen);

#endif
