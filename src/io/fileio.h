/*
 * fileio.h — whole-file reads with a size limit, and atomic file replacement.
 *
 * dn_file_read_all reads a file into one malloc'ed buffer. It refuses files larger than the
 * caller's limit before allocating, so a hostile or mistaken path (a huge file, a device
 * that never ends) cannot make the library allocate without bound.
 *
 * dn_atomic_* write a file so that readers see either the old content or the complete new
 * content, never a half-written file:
 *
 *     dn_atomic_file f;
 *     if (dn_atomic_open(&f, path, err) != DN_OK) return err->status;
 *     if (dn_atomic_write(&f, header, n, err) != DN_OK) return err->status; // f cleaned up
 *     ... more writes ...
 *     return dn_atomic_commit(&f, err);
 *
 * The data goes to a temporary file beside the target with one fixed name per target,
 * "<dir>/.<name>.tmp", opened without following symbolic links and locked with flock (an
 * exclusive lock on the open file, released by close, also at a crash). Commit flushes and
 * fsyncs the file, fsyncs the directory, renames the file over the target and fsyncs the
 * directory again. Any failure removes the temporary file and leaves the old target untouched;
 * the message names the path and the system's reason (errno).
 *
 * A crash (kill -9, power loss) can leave at most one temporary file per target, never a
 * partial target; the next save of that target reuses it (truncated after taking the lock)
 * and renames it away. A second writer of the same target while the first holds the lock (in
 * this process or another) fails at once with DN_ERR_IO, "another writer is saving this
 * file"; it does not wait. The fixed name needs 5 more bytes than the target's name.
 * dn_atomic_abort removes the temporary file; it is safe to call at any point, also after a
 * failure or a commit (then it does nothing), so error paths may always call it.
 * The new file gets the usual 0666 & ~umask permissions, as fopen(path, "w") would give.
 * A symbolic link at `path` is replaced by the new file (rename semantics), not followed.
 */
#ifndef DN_FILEIO_H
#define DN_FILEIO_H

#include <stdint.h>
#include <stdio.h>

#include "runtime/error.h"

/* A default limit for files read whole: 1 TiB where size_t allows, else half the space. */
#define DN_FILE_MAX                                                        \
    ((uint64_t)SIZE_MAX / 2 < ((uint64_t)1 << 40) ? (size_t)(SIZE_MAX / 2) \
                                                  : (size_t)((uint64_t)1 << 40))

/* Read all of `path` into *data (malloc'ed; free it) and its length into *size. The buffer
 * has one extra '\0' byte after the data so that text can be parsed in place; it is never
 * NULL on success, even for an empty file. A file larger than max_size is rejected.
 * Errors: DN_ERR_IO (message names the path and the system's reason), DN_ERR_NOMEM. */
dn_status dn_file_read_all(const char *path, size_t max_size, unsigned char **data, size_t *size,
                           dn_err *err);

typedef struct dn_atomic_file {
    FILE *fp;       /* the open temporary file; NULL when nothing is pending */
    char *path;     /* the target */
    char *tmp_path; /* the temporary file beside it */
} dn_atomic_file;

/* Create the temporary file for `path`. On failure *f is left so that abort is a no-op. */
dn_status dn_atomic_open(dn_atomic_file *f, const char *path, dn_err *err);

/* Append n bytes. On failure the temporary file is removed (no abort needed). */
dn_status dn_atomic_write(dn_atomic_file *f, const void *data, size_t n, dn_err *err);

/* Flush, fsync, close and rename into place, then fsync the directory. On failure the
 * temporary file is removed and the old target is untouched. Either way *f is finished. */
dn_status dn_atomic_commit(dn_atomic_file *f, dn_err *err);

/* Discard the pending file. Safe after a failure, a commit or a failed open. */
void dn_atomic_abort(dn_atomic_file *f);

/* The system's text for an errno value, thread-safe (strerror is not). Returns buf. */
const char *dn_errno_str(int errnum, char *buf, size_t size);

#endif
