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
 * Malformed third-party files never take the host down (sdk/ABI.md, "Hostile files"):
 *   1. a directory entry named *.so that is not a regular file (directory, FIFO, device,
 *      socket, dangling symlink, symlink loop) is skipped with a warning naming it;
 *   2. the ELF header and program headers are checked against the file before dlopen
 *      (magic, class, byte order, machine, ET_DYN, every table and PT_LOAD segment inside the
 *      file): a truncated or corrupted file is refused with the reason, never mapped;
 *   3. the file is first loaded in a forked probe process (dlopen, constructors, the entry
 *      and every descriptor check below): if that process crashes, calls exit() or hangs
 *      (PROBE_TIMEOUT_S), the file is refused with what happened and the host goes on;
 *      only a file whose probe finished is loaded in the host. No cache: a probe costs about
 *      a millisecond per file. EQUIMOD_PLUGIN_PROBE=0 turns probing off (debugging),
 *      EQUIMOD_PLUGIN_PROBE_TIMEOUT=S sets the timeout (seconds);
 *   4. every pointer a descriptor holds (the descriptor, name, version, summary, ops, the
 *      option table and its strings) must lie, aligned, inside the plugin file's own mapped
 *      segments (dl_iterate_phdr), and strings must end there: a wild pointer is refused
 *      with its value instead of being read.
 *
 * Deliberately left out: a registry cache (GStreamer's), recursive directory scans, and
 * unloading single plugins. Threading: build on one thread; read-only afterwards.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "fsutil.h"

/* In a probe process (see registry_load_file) nothing is logged: the host logs once, after. */
static int probe_quiet;
#define host_log(...) (probe_quiet ? (void)0 : host_log(__VA_ARGS__))

#define PROBE_TIMEOUT_S 20
#define PROBE_EXIT_CALLED 97 /* status of a probe whose plugin called exit() */

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

/* ---- the mapped segments of one plugin file (for descriptor pointer checks) ---- */
#define MAX_SEGS 16
typedef struct obj_map {
    uintptr_t lo[MAX_SEGS], hi[MAX_SEGS];
    int n;
} obj_map;

typedef struct {
    uintptr_t bias;
    const char *name;
    obj_map *m;
} map_find;

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    map_find *f = ud;
    if (info->dlpi_addr != f->bias || !info->dlpi_name || strcmp(info->dlpi_name, f->name))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && f->m->n < MAX_SEGS; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_R))
            continue;
        f->m->lo[f->m->n] = info->dlpi_addr + ph->p_vaddr;
        f->m->hi[f->m->n] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        f->m->n++;
    }
    return 1;
}

/* The readable PT_LOAD segments of the object behind handle h (n = 0 if not found). */
static void obj_map_of(void *h, obj_map *m)
{
    memset(m, 0, sizeof *m);
    struct link_map *lm = NULL;
    if (dlinfo(h, RTLD_DI_LINKMAP, &lm) || !lm)
        return;
    map_find f = {(uintptr_t)lm->l_addr, lm->l_name, m};
    dl_iterate_phdr(phdr_cb, &f);
}

/* 1 if [p, p + n) lies inside one segment of m and p is aligned to `align`. */
static int in_obj(const obj_map *m, const void *p, size_t n, size_t align)
{
    uintptr_t a = (uintptr_t)p;
    if (!p || a % align)
        return 0;
    for (int i = 0; i < m->n; i++)
        if (a >= m->lo[i] && a <= m->hi[i] && n <= m->hi[i] - a)
            return 1;
    return 0;
}

/* 1 if s is a NUL-terminated string inside one segment of m. */
static int str_in_obj(const obj_map *m, const char *s)
{
    uintptr_t a = (uintptr_t)s;
    for (int i = 0; s && i < m->n; i++)
        if (a >= m->lo[i] && a < m->hi[i])
            return memchr(s, 0, m->hi[i] - a) != NULL;
    return 0;
}

/* Every pointer of a descriptor, checked before anything reads through it. NULL if fine. */
static const char *wild_pointer(const obj_map *m, const eqm_plugin_desc *d, char *why,
                                size_t n)
{
    if (!m->n)
        return NULL; /* segments unknown (not expected on glibc): no check possible */
    if (!in_obj(m, d, 8, alignof(eqm_plugin_desc))) {
        snprintf(why, n, "descriptor pointer %p is %s", (const void *)d,
                 (uintptr_t)d % alignof(eqm_plugin_desc) ? "unaligned"
                                                          : "outside the plugin file");
        return why;
    }
    if (d->size < EQM_PLUGIN_DESC_SIZE_V1_0)
        return NULL; /* refused for its size before any pointer is read */
    if (!in_obj(m, d, d->size < sizeof *d ? d->size : sizeof *d, 1)) {
        snprintf(why, n, "descriptor size %u runs past the plugin file's data",
                 (unsigned)d->size);
        return why;
    }
    const struct {
        const char *what, *s;
    } strs[] = {{"name", d->name}, {"version", d->version}, {"summary", d->summary}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strs[i].s && !str_in_obj(m, strs[i].s)) {
            snprintf(why, n, "%s pointer %p is not a string inside the plugin file",
                     strs[i].what, (const void *)strs[i].s);
            return why;
        }
    if (d->ops && !in_obj(m, d->ops, sizeof(uint32_t), alignof(void *))) {
        snprintf(why, n, "ops pointer %p is %s", d->ops,
                 (uintptr_t)d->ops % alignof(void *) ? "unaligned" : "outside the plugin file");
        return why;
    }
    if (d->ops && !in_obj(m, d->ops, *(const uint32_t *)d->ops, 1)) {
        snprintf(why, n, "ops table size %u runs past the plugin file's data",
                 (unsigned)*(const uint32_t *)d->ops);
        return why;
    }
    for (size_t i = 0; d->params; i++) {
        const eqm_param_spec *p = &d->params[i];
        if (!in_obj(m, p, sizeof *p, alignof(eqm_param_spec))) {
            snprintf(why, n, "option table pointer %p: entry %zu is %s", (const void *)d->params,
                     i, (uintptr_t)p % alignof(eqm_param_spec) ? "unaligned"
                                                               : "outside the plugin file");
            return why;
        }
        if (!p->key || i > 256)
            break;
        const char *f[4] = {p->key, p->def, p->choices, p->help};
        for (int k = 0; k < 4; k++)
            if (f[k] && !str_in_obj(m, f[k])) {
                snprintf(why, n, "option table entry %zu: a string pointer (%p) is not a string "
                         "inside the plugin file", i, (const void *)f[k]);
                return why;
            }
    }
    return NULL;
}

#define REFUSE(...)                                                             \
    do {                                                                        \
        char msg_[640];                                                         \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                               \
        host_log(EQM_LOG_WARN, LOG_CAT, "%s: refused %s: %s", path, who, msg_); \
        goto refused;                                                           \
    } while (0)

/* Checks one descriptor; on success adds a copy to r and returns 1, else logs and 0. */
static int load_desc(eqm_registry *r, const char *path, uint32_t index,
                     const eqm_plugin_desc *d, const obj_map *map)
{
    char who[200];
    eqm_plugin *p = NULL;
    char why[512];
    snprintf(who, sizeof who, "descriptor %u of %s()", (unsigned)index, EQM_PLUGIN_ENTRY_SYMBOL);
    if (wild_pointer(map, d, why, sizeof why))
        REFUSE("%s (a corrupt plugin: its pointers must point into its own file)", why);
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

/* ---- before dlopen: the ELF file must hold what its headers say ---- */

#if defined(__x86_64__)
#define HOST_EM EM_X86_64
#elif defined(__aarch64__)
#define HOST_EM EM_AARCH64
#elif defined(__i386__)
#define HOST_EM EM_386
#else
#define HOST_EM (-1) /* unknown: the machine is left to dlopen */
#endif

/* NULL if `path` is a plausible shared object for this host, else why not (into why). */
static const char *elf_problem(const char *path, char *why, size_t n)
{
    struct stat st;
    int fd = fs_open_regular(path, &st, why, n);
    if (fd < 0)
        return why;
    ElfW(Ehdr) eh;
    ssize_t got = pread(fd, &eh, sizeof eh, 0);
    const char *bad = NULL;
    uint64_t size = (uint64_t)st.st_size;
    if (got < (ssize_t)EI_NIDENT || memcmp(eh.e_ident, ELFMAG, SELFMAG)) {
        bad = "not an ELF shared object (no ELF magic)";
    } else if (got < (ssize_t)sizeof eh) {
        snprintf(why, n, "truncated ELF file (%lld bytes, shorter than its header)",
                 (long long)st.st_size);
        bad = why;
    } else if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
               eh.e_ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB
                                                                                  : ELFDATA2MSB) ||
               eh.e_ident[EI_VERSION] != EV_CURRENT) {
        bad = "an ELF file for another word size or byte order (built for another machine)";
    } else if (HOST_EM >= 0 && eh.e_machine != HOST_EM) {
        snprintf(why, n, "an ELF file for another machine (e_machine %u, this host %d)",
                 (unsigned)eh.e_machine, HOST_EM);
        bad = why;
    } else if (eh.e_type != ET_DYN) {
        snprintf(why, n, "an ELF file of type %u, not a shared object (ET_DYN)",
                 (unsigned)eh.e_type);
        bad = why;
    } else if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 ||
               eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(ElfW(Phdr)) > size - eh.e_phoff) {
        snprintf(why, n, "corrupt or truncated ELF file (program headers at %llu x %u do not "
                 "fit in %llu bytes)",
                 (unsigned long long)eh.e_phoff, (unsigned)eh.e_phnum,
                 (unsigned long long)size);
        bad = why;
    } else if (eh.e_shoff && (eh.e_shoff > size || (uint64_t)eh.e_shnum * eh.e_shentsize >
                                                       size - eh.e_shoff)) {
        snprintf(why, n, "truncated ELF file (section headers end past its %llu bytes)",
                 (unsigned long long)size);
        bad = why;
    } else {
        size_t phn = eh.e_phnum;
        ElfW(Phdr) *ph = malloc(phn * sizeof *ph);
        if (!ph || pread(fd, ph, phn * sizeof *ph, (off_t)eh.e_phoff) !=
                       (ssize_t)(phn * sizeof *ph)) {
            bad = "cannot read its program headers";
        } else {
            int loads = 0;
            for (size_t i = 0; i < phn && !bad; i++) {
                if (ph[i].p_type != PT_LOAD && ph[i].p_type != PT_DYNAMIC)
                    continue;
                loads += ph[i].p_type == PT_LOAD;
                if (ph[i].p_offset > size || ph[i].p_filesz > size - ph[i].p_offset ||
                    ph[i].p_filesz > ph[i].p_memsz) {
                    snprintf(why, n, "truncated or corrupt ELF file (segment %zu: bytes "
                             "%llu..%llu, the file has %llu)",
                             i, (unsigned long long)ph[i].p_offset,
                             (unsigned long long)(ph[i].p_offset + ph[i].p_filesz),
                             (unsigned long long)size);
                    bad = why;
                }
            }
            if (!bad && !loads)
                bad = "corrupt ELF file (no loadable segment)";
        }
        free(ph);
    }
    close(fd);
    return bad;
}

/* ---- the probe process ---- */

static void probe_exit_hook(void) { _exit(PROBE_EXIT_CALLED); }

static int load_file_inproc(eqm_registry *r, const char *path);

/* Load `path` in a forked child first. Returns 1 when the child got through dlopen, the
 * constructors, the entry and every descriptor check; else 0 with why (what happened). */
static int probe_ok(const char *path, char *why, size_t n)
{
    int fds[2];
    if (pipe(fds))
        return 1; /* cannot probe: load as before */
    fflush(NULL); /* nothing buffered is written twice by the child */
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        probe_quiet = 1;
        atexit(probe_exit_hook); /* runs first: a plugin's exit() ends here, at once */
        eqm_registry *tmp = registry_create();
        if (tmp)
            load_file_inproc(tmp, path);
        char ok = 'k';
        if (write(fds[1], &ok, 1) != 1)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    int timeout_s = PROBE_TIMEOUT_S;
    const char *te = getenv("EQUIMOD_PLUGIN_PROBE_TIMEOUT");
    if (te && atoi(te) > 0)
        timeout_s = atoi(te);
    struct pollfd pf = {fds[0], POLLIN, 0};
    char c = 0;
    int pr, timed_out = 0, got = 0;
    do
        pr = poll(&pf, 1, timeout_s * 1000);
    while (pr < 0 && errno == EINTR);
    if (pr == 0)
        timed_out = 1;
    else if (pr > 0)
        got = read(fds[0], &c, 1) == 1 && c == 'k';
    close(fds[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 1;
    if (timed_out)
        snprintf(why, n, "loading it did not finish within %d s in a probe process (a "
                 "constructor or the entry that blocks?)", timeout_s);
    else if (WIFSIGNALED(status))
        snprintf(why, n, "loading it crashed a probe process (signal %d, %s): a corrupt file, "
                 "or a constructor, entry or descriptor that reads a wild pointer",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status) && WEXITSTATUS(status) == PROBE_EXIT_CALLED)
        snprintf(why, n, "it calls exit() while loading (in a constructor or the entry): a "
                 "plugin must never end the process");
    else
        snprintf(why, n, "a probe process loading it ended early (status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}

int registry_load_file(eqm_registry *r, const char *path)
{
    if (!r || !path)
        return EQM_ERR_INVAL;
    char why[1024];
    const char *ep = elf_problem(path, why, sizeof why);
    if (ep) {
        host_log(EQM_LOG_WARN, LOG_CAT, "%s: refused file: %s", path, ep);
        return EQM_ERR_FORMAT;
    }
    const char *pe = getenv("EQUIMOD_PLUGIN_PROBE");
    if (!(pe && !strcmp(pe, "0")) && !probe_ok(path, why, sizeof why)) {
        host_log(EQM_LOG_WARN, LOG_CAT, "%s: refused file: %s", path, why);
        return EQM_ERR_FORMAT;
    }
    return load_file_inproc(r, path);
}

static int load_file_inproc(eqm_registry *r, const char *path)
{
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
    obj_map map;
    obj_map_of(h, &map);
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
        added += load_desc(r, path, i, d, &map);
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
            struct stat st, lst;
            if (!stat(path, &st) && S_ISREG(st.st_mode))
                registry_load_file(r, path);
            else if (lstat(path, &lst))
                host_log(EQM_LOG_WARN, LOG_CAT, "%s: skipped: %s", path, strerror(errno));
            else if (S_ISLNK(lst.st_mode) && stat(path, &st))
                host_log(EQM_LOG_WARN, LOG_CAT, "%s: skipped: %s", path,
                         errno == ELOOP ? "a symbolic link loop"
                         : errno == ENOENT ? "a dangling symbolic link (its target is missing)"
                                           : strerror(errno));
            else
                host_log(EQM_LOG_WARN, LOG_CAT, "%s: skipped: it is %s, not a plugin file",
                         path, fs_type_name(S_ISLNK(lst.st_mode) ? st.st_mode : lst.st_mode));
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
