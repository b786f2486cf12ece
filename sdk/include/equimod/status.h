/* equimod SDK: status codes.
 *
 * Every function of the ABI that can fail returns an int status:
 *   0          EQM_OK     success
 *   > 0        flow signals, not failures (EQM_EOF: nothing more; EQM_SKIP: drop this sample;
 *              EQM_GROW: the caller's buffer is too small, grow it and call again)
 *   < 0        failures. The callee has recorded a message with api->set_error() on its
 *              eqm_host (see host_api.h); the caller reads it, it is never a heap string
 *              crossing the boundary.
 * Values are part of the ABI: never renumbered; new codes are appended (minor bump).
 * Threading: eqm_status_str() is pure and thread-safe. */
#ifndef EQM_SDK_STATUS_H
#define EQM_SDK_STATUS_H

enum eqm_status {
    EQM_OK = 0,
    EQM_EOF = 1,              /* end of data / iteration */
    EQM_SKIP = 2,             /* this sample is bad and was skipped; carry on */
    EQM_GROW = 3,             /* 1.2: the caller's output buffer is too small; the needed
                                 size is set (e.g. img->w/h/c): grow it, call again. A 1.1
                                 plugin says EQM_ERR_NOMEM for this (still accepted) */
    EQM_ERR_INVAL = -1,       /* invalid argument, option or configuration */
    EQM_ERR_NOMEM = -2,       /* allocation failed */
    EQM_ERR_IO = -3,          /* read/write/open failure */
    EQM_ERR_FORMAT = -4,      /* malformed or truncated data */
    EQM_ERR_UNSUPPORTED = -5, /* valid request this implementation cannot serve */
    EQM_ERR_STATE = -6,       /* call made in the wrong state (e.g. forward before bind) */
    EQM_ERR_ABI = -7,         /* ABI/version mismatch */
    EQM_ERR_NOTFOUND = -8,    /* named thing (plugin, file, key) not found */
    EQM_ERR_INTERRUPTED = -9, /* stopped on request (signal, shutdown) */
    EQM_ERR_NUMERIC = -10     /* NaN/Inf or other numerical failure */
};

static inline const char *eqm_status_str(int status)
{
    switch (status) {
    case EQM_OK: return "ok";
    case EQM_EOF: return "end of data";
    case EQM_SKIP: return "sample skipped";
    case EQM_GROW: return "buffer too small (grow it and call again)";
    case EQM_ERR_INVAL: return "invalid argument";
    case EQM_ERR_NOMEM: return "out of memory";
    case EQM_ERR_IO: return "I/O error";
    case EQM_ERR_FORMAT: return "bad format";
    case EQM_ERR_UNSUPPORTED: return "unsupported";
    case EQM_ERR_STATE: return "wrong state";
    case EQM_ERR_ABI: return "ABI mismatch";
    case EQM_ERR_NOTFOUND: return "not found";
    case EQM_ERR_INTERRUPTED: return "interrupted";
    case EQM_ERR_NUMERIC: return "numerical error";
    default: return "unknown status";
    }
}

#endif
