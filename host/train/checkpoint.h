/* host/train/checkpoint.h: checkpoint files (a named-section container) written
 * atomically and verified on reading, with "last + previous" rotation in a run folder.
 *
 * File layout (little-endian, version 1):
 *   0   char magic[8]      "EQMCKPT\0"
 *   8   u32 version        1
 *   12  u32 n_sections
 *   16  u64 config_hash    hash of the resolved config (the caller's choice of what counts)
 *   24  u64 file_bytes     total length of the file, trailer included
 *   32  n_sections x { char name[48] (NUL padded); u64 offset; u64 bytes }   (64 bytes each)
 *   ... section payloads, each starting on a 64-byte boundary (gaps are zero)
 *   end-8: u32 crc32 (zlib) of every byte before it;  char end[4] "END!"
 * A file whose magic, version, length, trailer, checksum or config hash is wrong is
 * refused with a message naming the file and the fix; a truncated file fails the length
 * check before anything is parsed. Only regular files are opened (a FIFO or a device is
 * refused at once, host/fsutil.h).
 *
 * Known sections (the trainer's) are validated by ckpt_read too, so that no caller reads a
 * field before it is known to fit (a CRC only proves the file is as written, not that its
 * writer was sane): each section lies after the table on a 64-byte boundary, inside the
 * payload, with a unique name; "params", "target", "optim" are whole float32 arrays of
 * finite values (NaN/Inf is EQM_ERR_NUMERIC naming the tensor); "target" is as long as
 * "params"; "tensors" (text, one line per tensor: slot index offset numel flags name) needs
 * "params" and every [offset, offset + numel) inside it, parsed without wrapping; "state"
 * is a ckpt_state (48 bytes) whose counters are in 0..CKPT_MAX_COUNT (images
 * 0..CKPT_MAX_IMAGES), batch <= step and elapsed_s in 0..1e10 s. ckpt_check_progress checks
 * the state against the config (epochs, steps per epoch) when the caller knows them.
 *
 * Rotation (ckpt_save_rotate): DIR/checkpoint.tmp is written, fsync'ed, then the current
 * DIR/checkpoint.last is renamed to DIR/checkpoint.prev IF it verifies (a corrupt last never
 * replaces a good previous), then checkpoint.tmp becomes checkpoint.last (rename is atomic)
 * and the folder is fsync'ed. ckpt_load_latest tries last then prev.
 *
 * Left out: compression, endianness conversion (the host refuses files it cannot verify),
 * partial/streamed reading (the whole file is read into memory).
 * Ownership: ckpt_write borrows the section data; a loaded ckpt owns one buffer holding the
 * whole file, and section data pointers point into it until ckpt_free.
 * Threading: no shared state; one call at a time per path.
 * Returns: EQM_OK, EQM_ERR_IO (open/write/rename failed), EQM_ERR_FORMAT (not a checkpoint,
 * truncated, bad checksum, unknown version), EQM_ERR_ABI (foreign: config hash differs),
 * EQM_ERR_NOTFOUND (no checkpoint), EQM_ERR_NOMEM; err gets one line. */
#ifndef EQM_TRAIN_CHECKPOINT_H
#define EQM_TRAIN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_MAGIC "EQMCKPT"
#define CKPT_VERSION 1u
#define CKPT_NAME_MAX 48

typedef struct ckpt_section {
    char name[CKPT_NAME_MAX];
    const void *data;
    uint64_t bytes;
} ckpt_section;

typedef struct ckpt {
    void *blob;          /* the whole file */
    size_t blob_bytes;
    uint64_t config_hash;
    int n_sections;
    ckpt_section *sec;   /* data pointers into blob */
} ckpt;

/* The "state" section (trainer.c's train_state, little-endian): 48 bytes. */
typedef struct ckpt_state {
    int64_t step, epoch, batch, optim_steps;
    double elapsed_s;
    int64_t images;
} ckpt_state;
#define CKPT_STATE_BYTES 48
#define CKPT_MAX_COUNT ((int64_t)1 << 40)  /* steps, epochs: 1.1e12, years at 1000 steps/s */
#define CKPT_MAX_IMAGES ((int64_t)1 << 53)

/* 64-bit FNV-1a over n bytes, continuing from h (start with CKPT_HASH_INIT). */
#define CKPT_HASH_INIT 0xcbf29ce484222325ull
uint64_t ckpt_hash(uint64_t h, const void *data, size_t n);

/* Write `path` (not atomic by itself: see ckpt_save_rotate). fsyncs the file. */
int ckpt_write(const char *path, uint64_t config_hash, const ckpt_section *s, int n,
               char *err, size_t errlen);
/* Read and verify `path`. expect_hash != 0: refuse another config hash (EQM_ERR_ABI). */
int ckpt_read(const char *path, uint64_t expect_hash, ckpt *out, char *err, size_t errlen);
/* Verify only (reads the file); EQM_OK when ckpt_read would succeed with hash 0. */
int ckpt_verify(const char *path, char *err, size_t errlen);
const ckpt_section *ckpt_find(const ckpt *c, const char *name);
/* The "state" section of a read checkpoint (already range-checked by ckpt_read);
 * EQM_ERR_NOTFOUND when it has none. */
int ckpt_state_get(const ckpt *c, ckpt_state *st);
/* The state against the config: epoch <= epochs, batch <= steps_per_epoch and step <=
 * epochs * steps_per_epoch (steps_per_epoch <= 0: not checked). `path` names the file in
 * the message. EQM_ERR_FORMAT when it does not fit. */
int ckpt_check_progress(const ckpt *c, const char *path, int64_t epochs,
                        int64_t steps_per_epoch, char *err, size_t errlen);
void ckpt_free(ckpt *c);

/* Paths inside a run folder. */
#define CKPT_LAST "checkpoint.last"
#define CKPT_PREV "checkpoint.prev"
#define CKPT_TMP "checkpoint.tmp"
int ckpt_save_rotate(const char *dir, uint64_t config_hash, const ckpt_section *s, int n,
                     char *err, size_t errlen);
/* Load DIR/checkpoint.last, or DIR/checkpoint.prev when last is missing or corrupt (the
 * refusal of last is reported through `warn`, may be NULL). A FOREIGN last (config hash
 * differs) is an error, not a fallback: the run folder belongs to another config.
 * *which gets CKPT_LAST or CKPT_PREV. EQM_ERR_NOTFOUND if neither file exists. */
int ckpt_load_latest(const char *dir, uint64_t expect_hash, ckpt *out, const char **which,
                     char *warn, size_t warnlen, char *err, size_t errlen);

#endif
