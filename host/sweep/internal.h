/* host/sweep/internal.h: what the files of host/sweep/ share (internal; the contract is
 * sweep.h).
 *
 *   plan.c      the sweep file read into a plan (sections, axes, [set.*]), validation
 *   expand.c    the plan's runs: the product of the axes or the [sample] draws; plan hash
 *   planjson.c  sweep.json: a folder bound to its plan, the plan read back
 *   util.c      small helpers below
 *   runner.c    the trainings as child processes (runner_*.c: its steps)
 *   results.c   results.csv and summary.md
 *   html.c      `equimod report`
 */
#ifndef EQM_SWEEP_INTERNAL_H
#define EQM_SWEEP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "sweep/sweep.h"

/* FNV-1a, 64 bits. */
#define SWEEP_FNV_INIT 0xcbf29ce484222325ull
uint64_t sweep_fnv(uint64_t h, const void *data, size_t n);
/* strdup of s, "" for NULL (NULL only when out of memory). */
char *sweep_strdup(const char *s);
/* s without leading/trailing blanks (in place). */
char *sweep_trim(char *s);
/* "a, b, c" into malloc'ed items; -1 for an empty item, another non-zero when out of
 * memory. */
int sweep_split_list(const char *text, char ***out, int *n);
/* A label made safe for a run folder name (in place). */
void sweep_sanitize_label(char *s);
/* The resolved text of a config (malloc'ed), its "section.key" list and hash (options
 * added since the first sweep folders, at their default, are left out of the hash). */
char *sweep_resolved_text(const eqm_config *c);
int sweep_resolved_keys(const char *text, char ***keys, size_t *n, uint64_t *hash);
/* The host's optional keys of the base's plugin sections ([equimod] t_fields) added to
 * keys (sections.h host_plugin_keys). */
int sweep_add_host_keys(const eqm_config *base, char ***keys, size_t *n);
void sweep_free_strv(char **v, size_t n);

/* expand.c: p->runs from p->axes (and [sample]); the plan hash over the base hash and the
 * runs' names and --set lists. */
int sweep_expand(sweep_plan *p, char *err, size_t errlen);
void sweep_plan_hash(sweep_plan *p);

#endif
