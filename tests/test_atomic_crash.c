/*
 * test_atomic_crash.c — what a crash during a save leaves (io/fileio.c's atomic writer, suite
 * io_atomic_crash).
 *
 * A crash is simulated two ways: by leaving a stale temporary file (complete or truncated)
 * where a killed writer would have left it, and by forking a child that saves and killing it
 * with SIGKILL at the moment its temporary file appears or at random moments of a save loop.
 * Afterwards the directory must hold the target and at most one leftover, the target must be
 * either the old complete file or a new complete file (every byte of one save, the right
 * size), and the next save must succeed and leave nothing but the target. Two writers of one
 * target at once: the second fails with a message saying so. A full disk is simulated with
 * RLIMIT_FSIZE (writes past it fail with EFBIG, as they would with ENOSPC): the old file stays,
 * the temporary file is removed and the message names the path and the system's reason.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "io/fileio.h"
#include "runtime/error.h"

TestSuite(io_atomic_crash, .init = dn_test_dir_init, .fini = dn_test_dir_fini);

#define SAVE_BYTES ((size_t)1 << 20)

/* Save SAVE_BYTES bytes of value v to path through the atomic writer, in 64 KiB writes. */
static dn_status save(const char *path, unsigned char v, dn_err *err)
{
    static unsigned char chunk[65536];
    memset(chunk, v, sizeof chunk);
    dn_atomic_file f;
    dn_status s = dn_atomic_open(&f, path, err);
    for (size_t done = 0; s == DN_OK && done < SAVE_BYTES; done += sizeof chunk)
        s = dn_atomic_write(&f, chunk, sizeof chunk, err);
    return s == DN_OK ? dn_atomic_commit(&f, err) : s;
}

/* The target holds SAVE_BYTES bytes all equal (one complete save); returns their value. */
static int expect_complete(const char *path)
{
    size_t n;
    unsigned char *p = dn_test_read_file(path, &n);
    cr_assert_eq(n, SAVE_BYTES, "%s has %zu bytes: a partial save", path, n);
    for (size_t i = 1; i < n; i++)
        cr_assert_eq(p[i], p[0], "%s mixes two saves at byte %zu", path, i);
    int v = p[0];
    free(p);
    return v;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void sleep_us(long us)
{
    struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&t, NULL);
}

/* A stale temporary file, complete or truncated, is reused and gone after the next save. */
Test(io_atomic_crash, stale_temp_is_reused)
{
    const char *path = dn_test_path("w.safetensors");
    const char *tmp = dn_test_path(".w.safetensors.tmp");
    dn_err err;
    cr_assert_eq(save(path, 1, &err), DN_OK, "%s", err.msg);
    dn_test_write_file(tmp, "half a file", 11); /* a crash mid-write */
    cr_assert_eq(save(path, 2, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(expect_complete(path), 2);
    cr_assert_eq(dn_test_dir_entries(), 1, "the stale temporary file is gone");

    unsigned char big[SAVE_BYTES + 100];
    memset(big, 9, sizeof big); /* longer than the new file: it must be truncated */
    dn_test_write_file(tmp, big, sizeof big);
    cr_assert_eq(save(path, 3, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(expect_complete(path), 3);
    cr_assert_eq(dn_test_dir_entries(), 1);
}

/* A symbolic link at the temporary name is not written through. */
Test(io_atomic_crash, symlink_at_temp_name_is_refused)
{
    const char *path = dn_test_path("t");
    const char *victim = dn_test_path("victim");
    dn_test_write_file(victim, "keep", 4);
    cr_assert_eq(symlink(victim, dn_test_path(".t.tmp")), 0);
    dn_err err;
    cr_assert_eq(save(path, 1, &err), DN_ERR_IO);
    EXPECT_MSG(err.msg, path, ".t.tmp");
    size_t n;
    unsigned char *p = dn_test_read_file(victim, &n);
    cr_assert(n == 4 && memcmp(p, "keep", 4) == 0, "the link's target was written");
    free(p);
}

/* Two writers of one target: the second is refused while the first holds the file. */
Test(io_atomic_crash, second_writer_fails_clearly)
{
    const char *path = dn_test_path("t");
    dn_atomic_file a, b;
    dn_err err;
    cr_assert_eq(dn_atomic_open(&a, path, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_atomic_write(&a, "first", 5, &err), DN_OK);
    cr_assert_eq(dn_atomic_open(&b, path, &err), DN_ERR_IO);
    EXPECT_MSG(err.msg, path, "another writer is saving this file");
    dn_atomic_abort(&b);
    cr_assert_eq(dn_atomic_commit(&a, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_test_dir_entries(), 1);
    cr_assert_eq(save(path, 4, &err), DN_OK, "%s", err.msg); /* free again */
}

/* A child killed while its temporary file is being written: the old target survives intact,
 * one leftover at most, and the next save cleans up. */
Test(io_atomic_crash, kill_during_write)
{
    const char *path = dn_test_path("ckpt");
    const char *tmp = dn_test_path(".ckpt.tmp");
    dn_err err;
    cr_assert_eq(save(path, 1, &err), DN_OK, "%s", err.msg);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dn_atomic_file f;
        if (dn_atomic_open(&f, path, &err) != DN_OK)
            _exit(1);
        static unsigned char chunk[65536];
        for (;;) { /* never commits: killed mid-write */
            if (dn_atomic_write(&f, chunk, sizeof chunk, &err) != DN_OK)
                _exit(2);
            sleep_us(1000);
        }
    }
    for (int i = 0; i < 5000; i++) { /* until the temporary file has data, at most 5 s */
        struct stat st;
        if (stat(tmp, &st) == 0 && st.st_size > 0)
            break;
        sleep_us(1000);
    }
    bool created = exists(tmp);
    kill(pid, SIGKILL); /* before any assertion, so a failing test leaves no writer behind */
    int status;
    waitpid(pid, &status, 0);
    cr_assert(created, "the child never created its temporary file");
    cr_assert(WIFSIGNALED(status), "the child ended by itself");
    cr_assert_eq(expect_complete(path), 1, "the old file survives the crash");
    cr_assert_leq(dn_test_dir_entries(), 2, "at most one leftover");
    cr_assert_eq(save(path, 2, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(expect_complete(path), 2);
    cr_assert_eq(dn_test_dir_entries(), 1, "the next save leaves no leftover");
}

/* Children saving in a loop, killed at random moments: whatever the moment, the target is one
 * complete save and leftovers never pile up. */
Test(io_atomic_crash, kill_at_random_moments)
{
    const char *path = dn_test_path("ckpt");
    dn_err err;
    cr_assert_eq(save(path, 0, &err), DN_OK, "%s", err.msg);
    srand(42);
    for (int round = 0; round < 12; round++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            for (unsigned char v = 1;; v = (unsigned char)(v % 250 + 1))
                if (save(path, v, &err) != DN_OK)
                    _exit(1);
        }
        sleep_us(2000 + rand() % 30000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "round %d: the child failed: %d", round, status);
        (void)expect_complete(path);
        cr_assert_leq(dn_test_dir_entries(), 2, "round %d: leftovers pile up", round);
    }
    cr_assert_eq(save(path, 7, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(expect_complete(path), 7);
    cr_assert_eq(dn_test_dir_entries(), 1, "the next save leaves no leftover");
}

/* A write that fails half-way (the file size limit standing in for a full disk): the old file
 * stays, no temporary file remains, and the message names the path and errno's text. Criterion
 * runs each test in a process of its own, so the limit does not leak into other tests. */
Test(io_atomic_crash, failed_write_keeps_old_file)
{
    const char *path = dn_test_path("ckpt");
    dn_err err;
    cr_assert_eq(save(path, 1, &err), DN_OK, "%s", err.msg);
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit then fails with EFBIG */
    struct rlimit lim = { 256 * 1024, 256 * 1024 };
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    dn_test_expect_status(save(path, 2, &err), DN_ERR_IO, err.msg);
    EXPECT_MSG(err.msg, ".ckpt.tmp", "File too large");
    cr_assert_eq(expect_complete(path), 1, "the old file survives a failed write");
    cr_assert_eq(dn_test_dir_entries(), 1, "the temporary file is removed");
}
