/* host/resolve.c: config_resolve, binding a whole config against the plugin registry and
 * the host's section table (sections.h).
 *
 * Order: every section of the file in file order (plugin sections through
 * config_bind_plugin, host sections through their spec); then host sections absent from
 * the file get their defaults (so the resolved output is complete); then required
 * sections that are missing; then keys and sections nobody read.
 * Deliberately left out: creating plugin instances (the trainer does that).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "sections.h"

static int bind_host_section(eqm_config *c, const host_section *hs, const char *name,
                             char *err, size_t errlen)
{
    void *o = calloc(1, hs->opts_size ? hs->opts_size : 1);
    if (!o) {
        snprintf(err, errlen, "[%s]: out of memory", name);
        return EQM_ERR_NOMEM;
    }
    int rc = config_bind(c, name, hs->spec, o, NULL, err, errlen);
    if (!rc)
        rc = config_section_attach(c, name, NULL, o);
    if (rc)
        free(o);
    return rc;
}

int config_resolve(eqm_config *c, const eqm_registry *r, char *err, size_t errlen)
{
    int rc;
    for (size_t i = 0; config_section_at(c, i); i++) {
        const char *name = config_section_at(c, i);
        const host_section *hs = host_section_find(name);
        if (!hs)
            continue; /* reported by config_check_unused with a did-you-mean */
        if (hs->plugin_kind >= 0) {
            const eqm_plugin *p = NULL;
            void *o = NULL;
            rc = config_bind_plugin(c, r, name, hs->plugin_kind, &p, &o, err, errlen);
            if (!rc)
                rc = config_section_attach(c, name, p, o);
            if (rc) {
                free(o);
                return rc;
            }
        } else if ((rc = bind_host_section(c, hs, name, err, errlen))) {
            return rc;
        }
    }
    for (size_t i = 0; host_sections[i].name; i++) {
        const host_section *hs = &host_sections[i];
        if (strchr(hs->name, '*') || config_has_section(c, hs->name))
            continue;
        if (hs->required && hs->plugin_kind < 0) {
            snprintf(err, errlen, "%s: missing section [%s] (%s)\nhint: add a [%s] section",
                     config_where(c, hs->name, NULL), hs->name, hs->help, hs->name);
            return EQM_ERR_INVAL;
        }
        if (hs->required) {
            snprintf(err, errlen,
                     "%s: missing section [%s] (%s)\nhint: add [%s] with 'plugin = NAME'; "
                     "'equimod plugins' lists the %s plugins",
                     config_where(c, hs->name, NULL), hs->name, hs->help, hs->name,
                     kind_name(hs->plugin_kind) ? kind_name(hs->plugin_kind) : "?");
            return EQM_ERR_INVAL;
        }
        if (hs->plugin_kind < 0 && (rc = bind_host_section(c, hs, hs->name, err, errlen)))
            return rc;
    }
    return config_check_unused(c, err, errlen);
}
