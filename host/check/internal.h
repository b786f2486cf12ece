/* host/check/internal.h: what the parts of `equimod check` share (internal to host/check/
 * and host/cmd/check.c, the command's front-end).
 *
 *   common.c   the report (one line per failed rule), guarded buffers, hashing
 *   augment.c  check_augment: sample/out_shape/apply/apply_scaled on synthetic images
 *   dataset.c  check_dataset: info, get, the buffer-growth protocol, threads
 *   stream.c   check_stream: a streaming dataset's decode on a generated shard
 *   module.c   check_module: backbones, methods and equivariance modules (finite
 *              differences, canaries, the target forward, max_rows = 0)
 * Each check_KIND runs on an instance created with `opts` (the plugin's option struct, filled
 * from its defaults and --set) and reports through chk_fail/chk_pass on `c`.
 */
#ifndef EQM_HOST_CHECK_INTERNAL_H
#define EQM_HOST_CHECK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

typedef struct ck {
    const eqm_plugin *pl;
    char label[96];
    int n_checks, n_fail, verbose;
    eqm_host *ctx;
} ck;

/* "  FAIL [rule] what happened" (counted as a failed check). */
void chk_fail(ck *c, const char *rule, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A check that held (listed with -v). */
void chk_pass(ck *c, const char *what);
/* "  note ..." (information, not a check). */
void chk_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The message of a failed call fn (in buf), or the rule it broke by not setting one. */
const char *chk_why(ck *c, int rc, char *buf, size_t n, const char *fn);

/* Guarded buffers: GUARD canary bytes on each side of n bytes. */
#define GUARD 4096
#define CANARY ((unsigned char)0xA7)
typedef struct gbuf {
    unsigned char *raw;
    size_t n;
} gbuf;
void *chk_gb_alloc(gbuf *g, size_t n); /* the n bytes (canary-filled), NULL on OOM */
int chk_gb_intact(const gbuf *g);      /* 1 if both guards are intact */
void chk_gb_free(gbuf *g);
/* fn on 4 copies of *run (size bytes, an int `failed` at failed_off that fn sets) in 4
 * threads at once: 1 when a copy failed, 0 when none did, -1 when no thread started. */
int chk_threads(void *(*fn)(void *), const void *run, size_t size, size_t failed_off);
/* FNV-1a over n bytes, continuing from h. */
uint64_t chk_fnv(uint64_t h, const void *p, size_t n);

void check_augment(ck *c, const eqm_plugin *pl, void *opts);
void check_dataset(ck *c, const eqm_plugin *pl, void *opts);
/* A streaming dataset (open instance, info filled): its samples of a generated shard. */
void check_stream(ck *c, const eqm_dataset_ops *ops, void *self, const eqm_dataset_info *info);
void check_module(ck *c, const eqm_plugin *pl, void *opts);

#endif
