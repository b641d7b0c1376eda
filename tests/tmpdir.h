/*
 * tmpdir.h — a scratch directory for tests that write files: made before each test (a suite's
 * .init), removed with everything in it after (.fini).
 */
#ifndef DN_TEST_TMPDIR_H
#define DN_TEST_TMPDIR_H

extern char dn_test_dir[256];

/* mkdtemp /tmp/dn_test_<tag>_XXXXXX into dn_test_dir (fails the test if it cannot). */
void dn_test_dir_make(const char *tag);
/* Remove every file in dn_test_dir, then the directory. */
void dn_test_dir_remove(void);

#endif
