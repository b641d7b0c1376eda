/*
 * error.h — the message a handle keeps about its last failure.
 *
 * Every fallible internal function takes a dn_err* and returns a dn_status; on failure it
 * fills the message with where (file, JSON location, node) and what (expected vs found).
 * dn_err_set returns its status so that `return dn_err_set(err, DN_ERR_MODEL, ...)` reads
 * as one statement.
 */
#ifndef DN_ERROR_H
#define DN_ERROR_H

#include "dagnet.h"

#define DN_ERRMSG_MAX 1024

typedef struct dn_err {
    dn_status status;
    char msg[DN_ERRMSG_MAX];
} dn_err;

void dn_err_clear(dn_err *err);

/* Format the message (printf style), remember the status and return it. err may be NULL. */
dn_status dn_err_set(dn_err *err, dn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Put "prefix: " in front of the current message, e.g. the file a lower layer did not know. */
void dn_err_prefix(dn_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What every dn_*_errmsg(NULL) says: no handle exists, because memory ran out or because the
 * constructor was given a NULL `out` (then it returned DN_ERR_ARG). */
#define DN_NO_HANDLE_MSG \
    "no handle: out of memory, or the call that should have made it was given a NULL out"

#endif
