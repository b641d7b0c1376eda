/* tmpdir.c — the tests' scratch directory (see tmpdir.h). */
#include "tmpdir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char dn_test_dir[256];

void dn_test_dir_make(const char *tag)
{
    snprintf(dn_test_dir, sizeof dn_test_dir, "/tmp/dn_test_%s_XXXXXX", tag);
    cr_assert_not_null(mkdtemp(dn_test_dir), "mkdtemp failed");
}

void dn_test_dir_remove(void)
{
    DIR *d = opendir(dn_test_dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dn_test_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dn_test_dir);
}
