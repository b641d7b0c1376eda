/*
 * fileio.c — whole-file reads with a size limit, and atomic file replacement (see fileio.h).
 *
 * Reads use open/fstat/read rather than stdio so that the size limit is checked before any
 * allocation for regular files, and enforced while reading for pipes and devices whose size
 * fstat cannot tell. Atomic writes go to one fixed temporary name per target,
 * "<dir>/.<name>.tmp", held with flock while it is written and renamed.
 */
#include "io/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* First allocation when the size is unknown (a pipe); the buffer doubles from there. */
#define READ_CHUNK ((size_t)1 << 16)

const char *dn_errno_str(int errnum, char *buf, size_t size)
{
    /* _POSIX_C_SOURCE selects the XSI strerror_r, which returns int and fills buf. */
    if (strerror_r(errnum, buf, size) != 0)
        snprintf(buf, size, "error %d", errnum);
    return buf;
}

static dn_status io_error(dn_err *err, const char *path, const char *what, int errnum)
{
    char reason[256];
    return dn_err_set(err, DN_ERR_IO, "%s: %s: %s", path, what,
                      dn_errno_str(errnum, reason, sizeof reason));
}

static dn_status too_large(dn_err *err, const char *path, unsigned long long found, size_t max_size,
                           bool at_least)
{
    return dn_err_set(err, DN_ERR_IO, "%s: file is %s%llu bytes, larger than the limit of %zu",
                      path, at_least ? "at least " : "", found, max_size);
}

/* read() until n bytes arrived or end of file; returns the count, or -1 with errno set. */
static ssize_t read_full(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Read everything from fd into a growing buffer (capacity cap+1 bytes at most, for '\0'). */
static dn_status read_stream(int fd, const char *path, size_t max_size, size_t hint,
                             unsigned char **data, size_t *size, dn_err *err)
{
    size_t cap = hint < max_size ? hint : max_size;
    if (cap < READ_CHUNK)
        cap = max_size < READ_CHUNK ? max_size : READ_CHUNK;
    unsigned char *buf = malloc(cap + 1);
    if (!buf)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path,
                          cap + 1);
    size_t used = 0;
    for (;;) {
        ssize_t r = read_full(fd, buf + used, cap - used);
        if (r < 0) {
            int e = errno;
            free(buf);
            return io_error(err, path, "cannot read", e);
        }
        used += (size_t)r;
        if (used < cap)
            break; /* end of file */
        /* The buffer is full: peek one more byte to tell "exactly cap" from "more". */
        unsigned char extra;
        ssize_t more = read_full(fd, &extra, 1);
        if (more < 0) {
            int e = errno;
            free(buf);
            return io_error(err, path, "cannot read", e);
        }
        if (more == 0)
            break;
        if (cap >= max_size) {
            free(buf);
            return too_large(err, path, (unsigned long long)max_size + 1, max_size, true);
        }
        size_t ncap = cap > max_size / 2 ? max_size : cap * 2;
        unsigned char *nbuf = realloc(buf, ncap + 1);
        if (!nbuf) {
            free(buf);
            return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path,
                              ncap + 1);
        }
        buf = nbuf;
        buf[used++] = extra;
        cap = ncap;
    }
    buf[used] = '\0';
    *data = buf;
    *size = used;
    return DN_OK;
}

dn_status dn_file_read_all(const char *path, size_t max_size, unsigned char **data, size_t *size,
                           dn_err *err)
{
    *data = NULL;
    *size = 0;
    if (!path)
        return dn_err_set(err, DN_ERR_ARG, "file path is NULL");
    if (max_size >= SIZE_MAX)
        max_size = SIZE_MAX - 1; /* room for the '\0' */
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return io_error(err, path, "cannot open", errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return io_error(err, path, "cannot stat", e);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return dn_err_set(err, DN_ERR_IO, "%s: is a directory, expected a file", path);
    }
    size_t hint = 0;
    if (S_ISREG(st.st_mode)) {
        /* Regular files: reject before allocating; the size may still change while reading,
         * which read_stream handles. */
        if ((unsigned long long)st.st_size > (unsigned long long)max_size) {
            close(fd);
            return too_large(err, path, (unsigned long long)st.st_size, max_size, false);
        }
        hint = (size_t)st.st_size + 1; /* +1 so that end of file is seen without regrowth */
    }
    dn_status s = read_stream(fd, path, max_size, hint, data, size, err);
    close(fd);
    return s;
}

/* ---------------------------------------------------------------- atomic writes */

/* How many times to retry when the temporary file changed identity between open and lock
 * (another writer renamed or removed it meanwhile). */
#define TMP_ATTEMPTS 8

static void atomic_reset(dn_atomic_file *f)
{
    free(f->path);
    free(f->tmp_path);
    f->fp = NULL;
    f->path = NULL;
    f->tmp_path = NULL;
}

/* Delete the temporary file (while still holding its lock, so no other writer is using it),
 * then close it and forget everything. Keeps errno for the caller. */
static void atomic_discard(dn_atomic_file *f)
{
    int saved = errno;
    if (f->fp && f->tmp_path)
        unlink(f->tmp_path);
    if (f->fp)
        fclose(f->fp);
    atomic_reset(f);
    errno = saved;
}

/* "<dir>/.<name>.tmp": one fixed name per target, so that a crash leaves at most one file,
 * which the next save of the same target reuses. */
static char *tmp_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    size_t len = strlen(path) + 6;
    char *tmp = malloc(len);
    if (tmp)
        snprintf(tmp, len, "%.*s.%s.tmp", (int)dir_len, path, path + dir_len);
    return tmp;
}

/* Open the temporary file and take its lock; *fd_out gets the descriptor, locked and empty.
 * flock is per open file description, so two writers of one target conflict even in one
 * process. The second fails at once rather than waiting: a save racing another save of the
 * same file is a mistake worth reporting, and whichever finished last would win anyway. */
static dn_status create_tmp(dn_atomic_file *f, int *fd_out, dn_err *err)
{
    char reason[256];
    f->tmp_path = tmp_name(f->path);
    if (!f->tmp_path)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate a temporary name", f->path);
    for (int attempt = 0; attempt < TMP_ATTEMPTS; attempt++) {
        /* O_NOFOLLOW: a symbolic link planted at the temporary name is refused, not written
         * through. No O_TRUNC: a file another writer holds must not be cut before we hold its
         * lock. */
        int fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0)
            return dn_err_set(err, DN_ERR_IO, "%s: cannot create the temporary file %s: %s",
                              f->path, f->tmp_path, dn_errno_str(errno, reason, sizeof reason));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return dn_err_set(err, DN_ERR_IO,
                                  "%s: another writer is saving this file (its temporary file "
                                  "%s is locked)",
                                  f->path, f->tmp_path);
            return dn_err_set(err, DN_ERR_IO, "%s: cannot lock the temporary file %s: %s", f->path,
                              f->tmp_path, dn_errno_str(e, reason, sizeof reason));
        }
        /* The writer we waited for may have renamed or removed the file between our open and
         * our lock: then the descriptor is no longer the name's file; start again. */
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(f->tmp_path, &named) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
            /* A stale file from a crash: reused, its old content dropped. */
            if (ftruncate(fd, 0) != 0) {
                int e = errno;
                unlink(f->tmp_path);
                close(fd);
                return dn_err_set(err, DN_ERR_IO, "%s: cannot truncate the temporary file %s: %s",
                                  f->path, f->tmp_path, dn_errno_str(e, reason, sizeof reason));
            }
            *fd_out = fd;
            return DN_OK;
        }
        close(fd);
    }
    return dn_err_set(err, DN_ERR_IO,
                      "%s: cannot hold the temporary file %s: other writers keep replacing it",
                      f->path, f->tmp_path);
}

dn_status dn_atomic_open(dn_atomic_file *f, const char *path, dn_err *err)
{
    f->fp = NULL;
    f->path = NULL;
    f->tmp_path = NULL;
    if (!path)
        return dn_err_set(err, DN_ERR_ARG, "file path is NULL");
    f->path = strdup(path);
    if (!f->path)
        return dn_err_set(err, DN_ERR_NOMEM, "%s: cannot allocate the path", path);
    int fd = -1;
    dn_status s = create_tmp(f, &fd, err);
    if (s != DN_OK) {
        atomic_reset(f); /* nothing of ours is left on disk */
        return s;
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int e = errno;
        unlink(f->tmp_path);
        close(fd);
        s = io_error(err, f->tmp_path, "cannot open temporary file", e);
        atomic_reset(f);
        return s;
    }
    return DN_OK;
}

dn_status dn_atomic_write(dn_atomic_file *f, const void *data, size_t n, dn_err *err)
{
    if (!f->fp)
        return dn_err_set(err, DN_ERR_ARG, "write to an atomic file that is not open");
    if (n == 0)
        return DN_OK;
    if (!data) {
        dn_status s = dn_err_set(err, DN_ERR_ARG, "%s: write of %zu bytes from NULL", f->path, n);
        atomic_discard(f);
        return s;
    }
    if (fwrite(data, 1, n, f->fp) != n) {
        int e = errno ? errno : EIO;
        dn_status s = io_error(err, f->tmp_path, "cannot write", e);
        atomic_discard(f);
        return s;
    }
    return DN_OK;
}

/* The directory holding path, opened for fsync; -1 (errno set) when it cannot be. */
static int open_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    return fd;
}

/* fsync a directory; file systems that cannot sync directories (EINVAL) are not an error. */
static int sync_dir(int dir_fd)
{
    if (fsync(dir_fd) == 0 || errno == EINVAL || errno == ENOTSUP)
        return 0;
    return -1;
}

dn_status dn_atomic_commit(dn_atomic_file *f, dn_err *err)
{
    if (!f->fp)
        return dn_err_set(err, DN_ERR_ARG, "commit of an atomic file that is not open");
    /* Data must be on disk before the rename, or a crash could leave an empty target. */
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0) {
        dn_status s = io_error(err, f->tmp_path, "cannot flush to disk", errno);
        atomic_discard(f);
        return s;
    }
    /* The directory is synced before the rename (the temporary file's entry is durable) and
     * after it (the rename is). */
    int dir_fd = open_parent_dir(f->path);
    if (dir_fd < 0 || sync_dir(dir_fd) != 0) {
        dn_status s = io_error(err, f->path, "cannot sync its directory", errno);
        if (dir_fd >= 0)
            close(dir_fd);
        atomic_discard(f);
        return s;
    }
    /* The lock is held until after the rename, so no other writer reuses the file meanwhile. */
    if (rename(f->tmp_path, f->path) != 0) {
        char reason[256];
        dn_status s = dn_err_set(err, DN_ERR_IO, "%s: cannot rename %s into place: %s", f->path,
                                 f->tmp_path, dn_errno_str(errno, reason, sizeof reason));
        close(dir_fd);
        atomic_discard(f);
        return s;
    }
    int synced = sync_dir(dir_fd);
    int e = errno;
    close(dir_fd);
    /* fsync succeeded, so a failing close cannot lose data; it only releases the lock. */
    fclose(f->fp);
    f->fp = NULL;
    dn_status s = DN_OK;
    if (synced != 0)
        s = io_error(err, f->path,
                     "was renamed into place but its directory cannot be synced, so the "
                     "rename may not survive a crash",
                     e);
    atomic_reset(f);
    return s;
}

void dn_atomic_abort(dn_atomic_file *f)
{
    if (f)
        atomic_discard(f);
}
