/* host/registry.c: discovery and loading of plugin files, with every ABI check.
 *
 * A plugin file is a shared object exporting eqm_plugin_entry (plugin.h). Each file is
 * opened with dlopen(RTLD_NOW | RTLD_LOCAL): unresolved symbols fail at load time rather
 * than mid-training, and a plugin's symbols never satisfy another plugin's. The entry is
 * called with index 0, 1, ... until NULL; every descriptor is checked on its own (see
 * sdk/ABI.md, "Refusals") and refused with ONE warning line naming the file, the symbol or
 * plugin and the versions; a refusal never stops the other descriptors or files. Accepted
 * descriptors and ops tables are copied into zeroed host structs (min(size, sizeof)), so
 * fields appended after the plugin was built read as 0/NULL. A file with no accepted
 * descriptor is dlclosed; the others stay loaded until registry_destroy.
 *
 * Deliberately left out: a registry cache (GStreamer's), recursive directory scans, and
 * unloading single plugins. Threading: build on one thread; read-only afterwards.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"

#define LOG_CAT "registry"
#define MAX_DESCS_PER_FILE 1024

/* Sizes of the 1.0 ops tables: everything up to and including their last 1.0 field. */
#define DATASET_OPS_SIZE_V1_0 (offsetof(eqm_dataset_ops, get) + sizeof(void (*)(void)))
#define AUGMENT_OPS_SIZE_V1_0 \
    (offsetof(eqm_augment_ops, scratch_bytes) + sizeof(void (*)(void)))
#define MODULE_OPS_SIZE_V1_0 (offsetof(eqm_module_ops, flags) + sizeof(uint32_t))

struct loaded_file {
    void *handle;
    char *path;
};

struct eqm_registry {
    eqm_plugin **plugins;
    size_t n, cap;
    struct loaded_file *files;
    size_t n_files, cap_files;
    char **dirs_seen; /* canonical directories already scanned */
    size_t n_dirs_seen;
};

static const char *const kind_names[EQM_KIND_COUNT] = {"dataset", "augment", "backbone",
                                                       "method", "equimod"};

const char *kind_name(int kind)
{
    return kind >= 0 && kind < EQM_KIND_COUNT ? kind_names[kind] : NULL;
}

int kind_from_name(const char *name)
{
    for (int k = 0; name && k < EQM_KIND_COUNT; k++)
        if (!strcmp(name, kind_names[k]))
            return k;
    return -1;
}

eqm_registry *registry_create(void) { return calloc(1, sizeof(eqm_registry)); }

void registry_destroy(eqm_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->plugins[i]->path);
        free(r->plugins[i]);
    }
    free(r->plugins);
    for (size_t i = 0; i < r->n_files; i++) {
        dlclose(r->files[i].handle);
        free(r->files[i].path);
    }
    free(r->files);
    for (size_t i = 0; i < r->n_dirs_seen; i++)
        free(r->dirs_seen[i]);
    free(r->dirs_seen);
    free(r);
}

size_t registry_count(const eqm_registry *r) { return r ? r->n : 0; }

const eqm_plugin *registry_at(const eqm_registry *r, size_t i)
{
    return r && i < r->n ? r->plugins[i] : NULL;
}

const eqm_plugin *registry_find(const eqm_registry *r, int kind, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if ((int)r->plugins[i]->desc.kind == kind && !strcmp(r->plugins[i]->desc.name, name))
            return r->plugins[i];
    return NULL;
}

/* Checks the REQUIRED functions of an ops table (kinds.h); names the first missing one. */
static const char *missing_required(const eqm_plugin *p)
{
#define REQ(field)         \
    if (!(ops->field))     \
        return #field;
    switch (p->desc.kind) {
    case EQM_KIND_DATASET: {
        const eqm_dataset_ops *ops = &p->ops.dataset;
        REQ(open) REQ(close) REQ(info)
        break;
    }
    case EQM_KIND_AUGMENT: {
        const eqm_augment_ops *ops = &p->ops.augment;
        REQ(create) REQ(destroy) REQ(n_params) REQ(sample) REQ(out_shape) REQ(apply)
        break;
    }
    default: {
        const eqm_module_ops *ops = &p->ops.module;
        REQ(create) REQ(destroy) REQ(n_tensors) REQ(tensor_info) REQ(act_floats) REQ(bind)
        REQ(init) REQ(forward) REQ(backward)
        if (p->desc.kind == EQM_KIND_BACKBONE)
            REQ(out_dim)
        break;
    }
    }
#undef REQ
    return NULL;
}

/* Every option must fit in the option struct, naturally aligned. */
static int params_fit(const eqm_plugin_desc *d, char *why, size_t n)
{
    size_t len = param_table_len(d->params);
    for (size_t i = 0; i < len; i++) {
        const eqm_param_spec *p = &d->params[i];
        size_t fs = param_field_size(p->type);
        if (p->offset % fs || p->offset > d->params_size || d->params_size - p->offset < fs) {
            snprintf(why, n,
                     "option '%s': offset %zu (%zu bytes) does not fit params_size %zu "
                     "aligned",
                     p->key, p->offset, fs, d->params_size);
            return 0;
        }
    }
    return 1;
}

static int add_plugin(eqm_registry *r, eqm_plugin *p)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 16;
        eqm_plugin **np = realloc(r->plugins, nc * sizeof *np);
        if (!np)
            return EQM_ERR_NOMEM;
        r->plugins = np;
        r->cap = nc;
    }
    r->plugins[r->n++] = p;
    return EQM_OK;
}

static const char *str_or(const char *s, const char *d) { return s ? s : d; }

#define REFUSE(...)                                                             \
    do {                                                                        \
        char msg_[640];                                                         \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                               \
        host_log(EQM_LOG_WARN, LOG_CAT, "%s: refused %s: %s", path, who, msg_); \
        goto refused;                                                           \
    } while (0)

/* Checks one descriptor; on success adds a copy to r and returns 1, else logs and 0. */
static int load_desc(eqm_registry *r, const char *path, uint32_t index,
                     const eqm_plugin_desc *d)
{
    char who[200];
    eqm_plugin *p = NULL;
    char why[512];
    snprintf(who, sizeof who, "descriptor %u of %s()", (unsigned)index, EQM_PLUGIN_ENTRY_SYMBOL);
    /* The first 8 bytes (size, abi_major, abi_minor) are frozen across every major. */
    if (d->size < offsetof(eqm_plugin_desc, kind))
        REFUSE("descriptor size %u is too small to hold a version (host ABI %d.%d)",
               (unsigned)d->size, EQM_ABI_MAJOR, EQM_ABI_MINOR);
    if (d->abi_major != EQM_ABI_MAJOR)
        REFUSE("built for ABI %u.%u, host ABI is %d.%d (other major: rebuild the plugin "
               "against equimod SDK %d.x)",
               d->abi_major, d->abi_minor, EQM_ABI_MAJOR, EQM_ABI_MINOR, EQM_ABI_MAJOR);
    if (d->abi_minor > EQM_ABI_MINOR)
        REFUSE("built for ABI %u.%u, newer than host ABI %d.%d (upgrade equimod or rebuild "
               "the plugin against SDK %d.%d)",
               d->abi_major, d->abi_minor, EQM_ABI_MAJOR, EQM_ABI_MINOR, EQM_ABI_MAJOR,
               EQM_ABI_MINOR);
    if (d->size < EQM_PLUGIN_DESC_SIZE_V1_0)
        REFUSE("descriptor size %u is smaller than the ABI 1.0 descriptor (%zu bytes; ABI "
               "%u.%u)",
               (unsigned)d->size, (size_t)EQM_PLUGIN_DESC_SIZE_V1_0, d->abi_major,
               d->abi_minor);
    if (!d->name || !param_key_valid(d->name))
        REFUSE("plugin name '%s' is not [a-z0-9_]+ (ABI %u.%u)", str_or(d->name, "(null)"),
               d->abi_major, d->abi_minor);
    snprintf(who, sizeof who, "plugin '%s' (%s() descriptor %u, ABI %u.%u)", d->name,
             EQM_PLUGIN_ENTRY_SYMBOL, (unsigned)index, d->abi_major, d->abi_minor);
    if (!kind_name((int)d->kind))
        REFUSE("unknown kind %u (host ABI %d.%d knows 0..%d)", (unsigned)d->kind,
               EQM_ABI_MAJOR, EQM_ABI_MINOR, EQM_KIND_COUNT - 1);
    snprintf(who, sizeof who, "plugin %s/%s (%s() descriptor %u, ABI %u.%u)",
             kind_name((int)d->kind), d->name, EQM_PLUGIN_ENTRY_SYMBOL, (unsigned)index,
             d->abi_major, d->abi_minor);
    if (!d->version)
        REFUSE("version is NULL");
    if (!d->ops)
        REFUSE("ops table is NULL");
    {
        uint32_t ops_size = *(const uint32_t *)d->ops;
        size_t need = d->kind == EQM_KIND_DATASET   ? DATASET_OPS_SIZE_V1_0
                      : d->kind == EQM_KIND_AUGMENT ? AUGMENT_OPS_SIZE_V1_0
                                                    : MODULE_OPS_SIZE_V1_0;
        size_t have = d->kind == EQM_KIND_DATASET   ? sizeof(eqm_dataset_ops)
                      : d->kind == EQM_KIND_AUGMENT ? sizeof(eqm_augment_ops)
                                                    : sizeof(eqm_module_ops);
        if (ops_size < need)
            REFUSE("ops table size %u is smaller than the ABI 1.0 %s table (%zu bytes)",
                   (unsigned)ops_size, kind_name((int)d->kind), need);
        p = calloc(1, sizeof *p);
        if (!p)
            return 0;
        memcpy(&p->desc, d, d->size < sizeof p->desc ? d->size : sizeof p->desc);
        memcpy(&p->ops, d->ops, ops_size < have ? ops_size : have);
    }
    if (!p->desc.summary)
        p->desc.summary = "";
    {
        const char *m = missing_required(p);
        if (m)
            REFUSE("REQUIRED function ops->%s is NULL", m);
    }
    if (d->kind == EQM_KIND_AUGMENT &&
        !p->ops.augment.source_box != !p->ops.augment.apply_scaled)
        REFUSE("ops->source_box and ops->apply_scaled (ABI 1.1): set both or neither");
    if (param_table_check(d->params, why, sizeof why))
        REFUSE("malformed option table: %s", why);
    if (!params_fit(d, why, sizeof why))
        REFUSE("malformed option table: %s", why);
    {
        /* Not a refusal: search order decides (the build tree over the installed copy, a
         * user's plugin over a built-in). Said once, at info level, naming both files. */
        const eqm_plugin *dup = registry_find(r, (int)d->kind, d->name);
        if (dup) {
            host_log(EQM_LOG_INFO, LOG_CAT,
                     "%s/%s: using %s (%s); %s (%s) is shadowed (found later in the search "
                     "order)",
                     kind_name((int)d->kind), d->name, dup->path, dup->desc.version, path,
                     d->version);
            free(p);
            return 0;
        }
    }
    p->path = strdup(path);
    p->file_abi_major = d->abi_major;
    p->file_abi_minor = d->abi_minor;
    if (!p->path || add_plugin(r, p)) {
        free(p->path);
        free(p);
        host_log(EQM_LOG_ERROR, LOG_CAT, "%s: out of memory", path);
        return 0;
    }
    host_log(EQM_LOG_DEBUG, LOG_CAT, "%s: loaded %s/%s %s (ABI %u.%u)", path,
             kind_name((int)d->kind), d->name, d->version, d->abi_major, d->abi_minor);
    return 1;
refused:
    free(p);
    return 0;
}
#undef REFUSE

int registry_load_file(eqm_registry *r, const char *path)
{
    if (!r || !path)
        return EQM_ERR_INVAL;
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        host_log(EQM_LOG_WARN, LOG_CAT, "%s: refused file: dlopen failed: %s", path,
                 e ? e : "unknown error");
        return EQM_ERR_IO;
    }
    /* dlopen of a file already open returns the same handle: never add its plugins twice. */
    for (size_t i = 0; i < r->n_files; i++)
        if (r->files[i].handle == h) {
            host_log(EQM_LOG_DEBUG, LOG_CAT, "%s: already loaded as %s", path, r->files[i].path);
            dlclose(h);
            return 0;
        }
    dlerror();
    void *sym = dlsym(h, EQM_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        host_log(EQM_LOG_WARN, LOG_CAT,
                 "%s: refused file: no symbol '%s' (not an equimod plugin, or built without "
                 "EQM_PLUGIN_ENTRY; host ABI %d.%d)",
                 path, EQM_PLUGIN_ENTRY_SYMBOL, EQM_ABI_MAJOR, EQM_ABI_MINOR);
        dlclose(h);
        return 0;
    }
    eqm_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object-to-function pointer, as POSIX allows */
    int added = 0;
    uint32_t i = 0;
    for (;; i++) {
        if (i == MAX_DESCS_PER_FILE) {
            host_log(EQM_LOG_WARN, LOG_CAT,
                     "%s: refused descriptors from %u on: %s() returned no NULL within %d "
                     "calls",
                     path, (unsigned)i, EQM_PLUGIN_ENTRY_SYMBOL, MAX_DESCS_PER_FILE);
            break;
        }
        const eqm_plugin_desc *d = entry(i);
        if (!d)
            break;
        added += load_desc(r, path, i, d);
    }
    if (!added) {
        if (i == 0)
            host_log(EQM_LOG_WARN, LOG_CAT, "%s: no plugin: %s(0) returned NULL", path,
                     EQM_PLUGIN_ENTRY_SYMBOL);
        dlclose(h);
        return 0;
    }
    if (r->n_files == r->cap_files) {
        size_t nc = r->cap_files ? r->cap_files * 2 : 8;
        struct loaded_file *nf = realloc(r->files, nc * sizeof *nf);
        if (!nf)
            return EQM_ERR_NOMEM; /* plugins stay registered; the handle is leaked */
        r->files = nf;
        r->cap_files = nc;
    }
    r->files[r->n_files].handle = h;
    r->files[r->n_files].path = strdup(path);
    r->n_files++;
    return added;
}

static int has_so_suffix(const char *n)
{
    size_t l = strlen(n);
    return l > 3 && !strcmp(n + l - 3, ".so");
}

static int so_filter(const struct dirent *e) { return has_so_suffix(e->d_name); }

/* Loads every *.so of one directory, in name order. `explicit_dir` = 1 for --plugin-path
 * and $EQUIMOD_PLUGIN_PATH entries: a missing one is warned about. */
static void scan_dir(eqm_registry *r, const char *dir, int explicit_dir)
{
    char canon[PATH_MAX];
    if (!realpath(dir, canon)) {
        host_log(explicit_dir ? EQM_LOG_WARN : EQM_LOG_DEBUG, LOG_CAT,
                 "plugin directory %s does not exist; skipped", dir);
        return;
    }
    for (size_t i = 0; i < r->n_dirs_seen; i++)
        if (!strcmp(r->dirs_seen[i], canon))
            return;
    char **nd = realloc(r->dirs_seen, (r->n_dirs_seen + 1) * sizeof *nd);
    if (!nd)
        return;
    r->dirs_seen = nd;
    if (!(r->dirs_seen[r->n_dirs_seen] = strdup(canon)))
        return;
    r->n_dirs_seen++;
    struct dirent **list = NULL;
    int n = scandir(dir, &list, so_filter, alphasort);
    if (n < 0) {
        host_log(EQM_LOG_WARN, LOG_CAT, "plugin directory %s cannot be read; skipped", dir);
        return;
    }
    for (int i = 0; i < n; i++) {
        size_t l = strlen(dir) + strlen(list[i]->d_name) + 2;
        char *path = malloc(l);
        if (path) {
            snprintf(path, l, "%s/%s", dir, list[i]->d_name);
            struct stat st;
            if (!stat(path, &st) && S_ISREG(st.st_mode))
                registry_load_file(r, path);
            free(path);
        }
        free(list[i]);
    }
    free(list);
}

int registry_scan(eqm_registry *r, const char *const *dirs, int n_dirs)
{
    if (!r)
        return EQM_ERR_INVAL;
    for (int i = 0; i < n_dirs; i++)
        if (dirs[i] && *dirs[i])
            scan_dir(r, dirs[i], 1);
    const char *env = getenv("EQUIMOD_PLUGIN_PATH");
    if (env) {
        char *copy = strdup(env);
        char *save = NULL;
        /* strtok_r skips empty elements: "a::b" never means the current directory. */
        for (char *t = copy ? strtok_r(copy, ":", &save) : NULL; t; t = strtok_r(NULL, ":", &save))
            scan_dir(r, t, 1);
        free(copy);
    }
    /* $EQUIMOD_PLUGIN_SYSTEM_PATH, when set (even empty), replaces the installed plugin
     * directory: empty leaves it out, so a test or a build tree never sees what happens
     * to be installed on the machine (as GStreamer's GST_PLUGIN_SYSTEM_PATH). */
    const char *sys = getenv("EQUIMOD_PLUGIN_SYSTEM_PATH");
    if (!sys) {
        scan_dir(r, EQM_PKGLIBDIR, 0);
    } else {
        char *copy = strdup(sys);
        char *save = NULL;
        for (char *t = copy ? strtok_r(copy, ":", &save) : NULL; t; t = strtok_r(NULL, ":", &save))
            scan_dir(r, t, 0);
        free(copy);
    }
    return (int)r->n;
}
