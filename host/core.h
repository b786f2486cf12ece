/* host/core.h: the host's internal interfaces shared by every command.
 *
 * Not part of the SDK: plugins never see this. Modules:
 *   log      one sink for the host and (through the api table) every plugin
 *   ctx      eqm_host instances: a label ("augment/color_jitter") + an error buffer
 *   api      the eqm_host_api table (host_api.h) with rng, alloc, parallel_for, nn, image
 *   registry discovery and loading of plugin files, with every ABI check
 *   config   INI reading (libinih), --set overrides, typed binding of sections through
 *            eqm_param_spec tables (the plugins' own, or the host's for its own sections),
 *            unused-key detection with did-you-mean, resolved output
 * Threading: registry and config are built on the main thread and read-only afterwards.
 */
#ifndef EQM_HOST_CORE_H
#define EQM_HOST_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <equimod/equimod.h>

/* ------------------------------------------------------------------ log --------- */
/* Level from EQM_LOG (error|warn|info|debug|trace, default info). Lines go to stderr as
 * "level category: message". */
void host_log(int level, const char *category, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void host_vlog(int level, const char *category, const char *fmt, va_list ap);
void host_log_set_level(int level);
/* Route log lines to `fn` instead of stderr (NULL restores stderr). `line` is the full
 * "level category: message" text without the newline; called under the log lock, so fn
 * must not log. For tests and embedding. */
void host_log_set_sink(void (*fn)(int level, const char *line, void *ud), void *ud);

/* Format a message into err[errlen] (when err is non-NULL) and return `status`, so that
 * `return errf(err, errlen, EQM_ERR_IO, "%s: %s", path, strerror(errno));` reports and fails
 * in one line. The (err, errlen) pair is how host modules hand messages to their callers. */
int errf(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------ ctx --------- */
/* An eqm_host is what a plugin instance receives: it carries the label used to prefix
 * its log lines and errors, and the last error message set through api->set_error. */
struct eqm_host {
    char label[96];
    char error[1024];
    int status;
};
eqm_host *host_ctx_create(const char *label); /* NULL on OOM */
void host_ctx_destroy(eqm_host *h);
/* What api->grads_final (ABI 1.4) does for a plugin calling it on h: fn(ctx, h, first,
 * count), its status returned to the plugin; NULL (the default): nothing, EQM_OK. The
 * trainer sets it on a module's context under MPI (host/train/step.c). */
typedef int (*host_grads_hook)(void *ctx, eqm_host *h, int first, int count);
void host_ctx_set_grads_hook(eqm_host *h, host_grads_hook fn, void *ctx);
const char *host_ctx_error(const eqm_host *h); /* "" if none */
/* Set an error on a context from host code (same semantics as api->set_error). */
int host_ctx_set_error(eqm_host *h, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The reason a plugin call failed, for the caller's message: the message the plugin set
 * with api->set_error on this thread since the last call of this function on h (it is
 * consumed, so that a later failure without a message never shows a stale one), else a
 * line naming the plugin, its kind and file, the function and the status:
 *     "augment plugin 'x' (x.so): sample() returned -4 (bad format) and set no message
 *      (...)"
 * Never "". Valid on this thread until its next call for h. `pl` may be NULL. The plugin
 * functions' callers use it (loader, sources, model, trainer, `equimod check`). */
struct eqm_plugin;
const char *host_ctx_failure(eqm_host *h, const struct eqm_plugin *pl, const char *fn,
                             int status);

/* ------------------------------------------------------------------ api --------- */
/* The process-wide services table. Compute threads: host_threads_init(n) sets the pool
 * used by parallel_for and the BLAS thread count (one policy for the process); default
 * is the number of online CPUs. */
const eqm_host_api *host_api(void);
/* The file/archive services table put in eqm_host_api.io (host/services/io.c). */
const eqm_io_api *io_api_table(void);
void host_threads_init(int n_threads);
int host_threads(void);
/* A thread count set by the user (`key`, e.g. "train.threads") is refused above
 * HOST_THREADS_PER_CORE per online CPU, and never below HOST_THREADS_FLOOR (a config
 * written for a larger node still validates on a small one): thousands only oversubscribe
 * the cores and crawl. Returns EQM_OK or EQM_ERR_INVAL with the reason and the fix. */
#define HOST_THREADS_PER_CORE 4
#define HOST_THREADS_FLOOR 64
int host_threads_check(const char *key, int64_t n, char *err, size_t errlen);
/* Filled in by host/nn (nn_api.c) and the image services; NULL until those exist. */
const eqm_nn_api *nn_api_table(void);
const eqm_image_api *image_api_table(void);

/* ------------------------------------------------------------------ registry ---- */
typedef struct eqm_plugin {
    eqm_plugin_desc desc; /* copied, zero-extended to the host's sizeof */
    union {
        eqm_dataset_ops dataset;
        eqm_augment_ops augment;
        eqm_module_ops module; /* backbone, method, equimod */
    } ops;                /* copied, zero-extended */
    char *path;           /* file it came from (owned) */
    uint16_t file_abi_major, file_abi_minor;
} eqm_plugin;

typedef struct eqm_registry eqm_registry;

eqm_registry *registry_create(void);
void registry_destroy(eqm_registry *r);
/* Add every plugin of one file. Refusals are logged as one line each (file, symbol,
 * versions) and do not stop the other descriptors/files. Returns the number of plugins
 * added, or a negative status if the file could not be opened at all. */
int registry_load_file(eqm_registry *r, const char *path);
/* Search order: dirs (from --plugin-path, in order), then $EQUIMOD_PLUGIN_PATH (colon
 * separated), then EQM_PKGLIBDIR. Every *.so in each directory is loaded; the current
 * directory is never searched implicitly. First of a (kind, name) wins; a later duplicate
 * is refused with a log line naming both files. Returns the number of plugins. */
int registry_scan(eqm_registry *r, const char *const *dirs, int n_dirs);
size_t registry_count(const eqm_registry *r);
const eqm_plugin *registry_at(const eqm_registry *r, size_t i);
const eqm_plugin *registry_find(const eqm_registry *r, int kind, const char *name);
const char *kind_name(int kind);      /* "dataset", ..., NULL if unknown */
int kind_from_name(const char *name); /* -1 if unknown */

/* ------------------------------------------------------------------ config ------ */
typedef struct eqm_config eqm_config;

/* Read an INI file. On error returns NULL and writes "file:line: message" into err. */
eqm_config *config_load(const char *path, char *err, size_t errlen);
eqm_config *config_new_empty(void);
void config_destroy(eqm_config *c);
/* Apply "section.key=value" (the section may contain dots: the key is after the last
 * dot). Creates the key/section when absent. Returns EQM_OK or EQM_ERR_INVAL (+err). */
int config_set(eqm_config *c, const char *assignment, char *err, size_t errlen);
/* Raw text of a value, NULL when absent. Marks the key as used. */
const char *config_get(eqm_config *c, const char *section, const char *key);
int config_has_section(const eqm_config *c, const char *section);
/* Section names in file order (index 0..n-1); NULL past the end. */
const char *config_section_at(const eqm_config *c, size_t i);
/* "file:line" of a key (or of the section if key is NULL), for messages. */
const char *config_where(const eqm_config *c, const char *section, const char *key);

/* Validate the keys of `section` against `spec` and fill `out` (the option struct,
 * params_size bytes, zeroed by the caller): defaults first, then config values. Unknown
 * keys, wrong types, out-of-range values and bad enum choices are errors with file:line
 * and a did-you-mean. `skip_keys` (NULL-terminated, may be NULL) are keys this section
 * holds for someone else (e.g. "plugin"). Strings are owned by the config. */
int config_bind(eqm_config *c, const char *section, const eqm_param_spec *spec, void *out,
                const char *const *skip_keys, char *err, size_t errlen);
/* Find the plugin named by `section`.plugin (of `kind`) and bind its options. *opts is
 * allocated (free with free()). */
int config_bind_plugin(eqm_config *c, const eqm_registry *r, const char *section, int kind,
                       const eqm_plugin **plugin, void **opts, char *err, size_t errlen);
/* After everything was bound: report any section or key nobody read, with did-you-mean.
 * `known_sections` adds section names valid for the caller even when absent/unused. */
int config_check_unused(const eqm_config *c, char *err, size_t errlen);
/* Write the config as INI text (every bound section shows its defaults too). */
void config_write(const eqm_config *c, FILE *f);
/* Parse one value of a given type the way config_bind does (for tests, the CLI). */
int param_parse(const eqm_param_spec *p, const char *text, void *field, char *err,
                size_t errlen);
/* Validate an option table (keys, types, defaults in range). */
int param_table_check(const eqm_param_spec *spec, char *err, size_t errlen);
/* Helpers of params.c: key syntax [a-z0-9_]+ (1 = valid); "bool", "int", ... (NULL if the
 * type is unknown); C size of a type's field (0 if unknown); number of entries before the
 * NULL key (capped at 256); "[min, max]" / "a|b|c" / "true|false" / "" for describe. */
int param_key_valid(const char *s);
const char *param_type_name(uint32_t type);
size_t param_field_size(uint32_t type);
size_t param_table_len(const eqm_param_spec *spec);
void param_range_text(const eqm_param_spec *p, char *buf, size_t n);
/* Did-you-mean: the candidate closest to `word` by Levenshtein distance, or NULL when
 * none is close enough (distance > max(2, len/3)) or `word` itself is a candidate. */
const char *suggest_closest(const char *word, const char *const *cands, size_t n);
/* Resolve a whole config against the registry and host_sections[] (sections.h): every
 * section of the file is bound (plugin sections through config_bind_plugin, host sections
 * through their spec; absent host sections get their defaults), missing required sections
 * are errors, then config_check_unused. The bound option structs stay owned by the config
 * and can be fetched below. Returns EQM_OK or a negative status with a message in err.
 * The registry must outlive every use of the config's plugin sections. */
int config_resolve(eqm_config *c, const eqm_registry *r, char *err, size_t errlen);
/* After config_resolve: the option struct bound for `section` (NULL if none), and the
 * plugin that section names (NULL for host sections). */
const void *config_section_opts(const eqm_config *c, const char *section);
const eqm_plugin *config_section_plugin(const eqm_config *c, const char *section);
/* Used by config_resolve: hand a bound option struct (malloc'd; the config frees it) and
 * the section's plugin (may be NULL) to the config. EQM_ERR_NOTFOUND if no such section. */
int config_section_attach(eqm_config *c, const char *section, const eqm_plugin *plugin,
                          void *opts);

/* ------------------------------------------------------------------ commands ---- */
/* Common command-line state: every command accepts --plugin-path DIR (repeatable) and
 * --set section.key=value (repeatable) where it makes sense. cli_registry() loads the
 * plugins once with the collected paths. */
#define CMD(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef CMD
eqm_registry *cli_registry(void);
void cli_add_plugin_path(const char *dir);
/* The --plugin-path dirs collected so far, in order (for child processes). */
int cli_plugin_paths(const char *const **dirs);

#endif
