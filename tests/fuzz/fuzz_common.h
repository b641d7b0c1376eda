/*
 * fuzz_common.h — what the libFuzzer harnesses of tests/fuzz/ share: an in-memory file.
 *
 * Some readers take a path (gzip IDX, checkpoints). A harness writes each input into one
 * memfd (an anonymous file in RAM, made once) and hands the reader /proc/self/fd/N, so that a
 * run touches no disk and leaves nothing behind.
 */
#ifndef DN_FUZZ_COMMON_H
#define DN_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The path of an in-memory file holding exactly the n bytes of data; aborts (a harness bug,
 * not a finding) if the memfd cannot be made or written. */
static inline const char *dn_fuzz_file(const uint8_t *data, size_t n)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("dn_fuzz", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, data, n, 0) != (ssize_t)n))
        abort();
    return path;
}

#endif
