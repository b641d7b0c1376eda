/* options.h — the ABI policy of dagnet.h for options structs, in one place: each starts with
 * `size_t struct_size`, the size the caller was compiled with. 0 (a designated initialiser)
 * means the fields of the first layout (v0 bytes); otherwise any size from v0 up to this
 * header's. The caller's bytes go over the defaults already in dst, so the fields its layout
 * lacks keep their defaults, and dst's struct_size becomes this header's. */
#ifndef DN_RUNTIME_OPTIONS_H
#define DN_RUNTIME_OPTIONS_H

#include <stddef.h>
#include <string.h>

#include "runtime/error.h"

/* fn names the call and default_macro the initialiser to use, in the message. */
static inline dn_status dn_options_copy(void *dst, size_t dst_size, const void *src, size_t v0,
                                        const char *fn, const char *default_macro, dn_err *err)
{
    size_t given = *(const size_t *)src;
    size_t size = given ? given : v0;
    if (size < v0 || size > dst_size)
        return dn_err_set(err, DN_ERR_ARG,
                          "%s: options struct_size %zu is not in [%zu, %zu] (initialise the "
                          "options with %s; built against another dagnet.h?)",
                          fn, given, v0, dst_size, default_macro);
    memcpy(dst, src, size);
    *(size_t *)dst = dst_size;
    return DN_OK;
}

#endif
