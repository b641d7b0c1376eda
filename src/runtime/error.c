/* error.c — formatting of dn_err messages (see error.h). */
#include "runtime/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dn_err_clear(dn_err *err)
{
    if (!err)
        return;
    err->status = DN_OK;
    err->msg[0] = '\0';
}

dn_status dn_err_set(dn_err *err, dn_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = status;
    return status;
}

void dn_err_prefix(dn_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[DN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char joined[DN_ERRMSG_MAX];
    snprintf(joined, sizeof joined, "%.400s: %.600s", prefix, err->msg);
    memcpy(err->msg, joined, sizeof joined);
}

const char *dn_status_name(dn_status s)
{
    switch (s) {
    case DN_OK: return "ok";
    case DN_ERR_IO: return "I/O error";
    case DN_ERR_PARSE: return "parse error";
    case DN_ERR_MODEL: return "model error";
    case DN_ERR_SHAPE: return "shape error";
    case DN_ERR_NOMEM: return "out of memory";
    case DN_ERR_ARG: return "bad argument";
    case DN_ERR_DIVERGED: return "training diverged";
    case DN_ERR_COMM: return "communication between ranks failed";
    }
    return "unknown status";
}
