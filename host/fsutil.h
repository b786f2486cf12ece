/* host/fsutil.h: opening and reading input files safely (checkpoints, safetensors, data
 * batches, images, shard-writer inputs).
 *
 * Every input the host reads must be a regular file: a FIFO, a character or block device, a
 * socket or a directory where a file is expected would otherwise block forever (open or
 * read of a FIFO without a writer, a tty), read without end (/dev/zero) or fail late with a
 * confusing message. fs_open_regular opens with O_NONBLOCK (an open that never blocks, even
 * on a FIFO), checks fstat S_ISREG on the opened descriptor (no stat/open race), then
 * clears O_NONBLOCK. Symbolic links are followed (a link to a regular file is fine).
 *
 * fs_read_file reads a whole regular file, or gunzips it (gzip wrapper, concatenated members
 * allowed, the stream end and CRC checked), refusing more than `max` bytes of output without
 * producing them: a gzip bomb is stopped at max + 1 bytes, not after filling memory.
 *
 * Errors name the path and the reason (for a non-regular file, what it is) in err.
 * Returns: a descriptor / EQM_OK, or a negative eqm_status: EQM_ERR_NOTFOUND (no such file),
 * EQM_ERR_IO (not a regular file, permission, read error), EQM_ERR_FORMAT (corrupt or
 * truncated gzip data, or larger than `max`), EQM_ERR_NOMEM.
 * Threading: no shared state. */
#ifndef EQM_HOST_FSUTIL_H
#define EQM_HOST_FSUTIL_H

#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

/* "a directory", "a FIFO (named pipe)", "a character device", ... for st_mode. */
const char *fs_type_name(mode_t mode);
/* Open `path` read-only if it is a regular file; fd >= 0 or a negative status. `st` (may be
 * NULL) gets its fstat. The descriptor is blocking and close-on-exec. */
int fs_open_regular(const char *path, struct stat *st, char *err, size_t errlen);
/* The same as a stdio stream ("rb"); NULL with *status (may be NULL) set on failure. */
FILE *fs_fopen_regular(const char *path, int *status, char *err, size_t errlen);
/* Read a whole file (gunzip = 1: inflate a gzip stream) of at most `max` bytes (of output)
 * into a malloc'ed buffer with one spare zero byte after the data (*n excludes it). */
int fs_read_file(const char *path, int gunzip, size_t max, unsigned char **data, size_t *n,
                 char *err, size_t errlen);

/* mkdir -p: every missing folder of path (mode as mkdir(2)). 0, or -1 with errno. */
int fs_mkdir_p(const char *path, mode_t mode);

#endif
