/*
 * api_build.c — dn_build_info (include/dagnet.h): the BLIS and OpenMP build the library runs
 * on, as one line for `dagnet --version` and for programs' bug reports. BLIS's part comes from
 * the runtime's BLIS wrapper (runtime/gemm.h), which alone includes blis.h.
 */
#include <omp.h>
#include <stdio.h>

#include "dagnet.h"
#include "runtime/gemm.h"

/* _OPENMP is the date of the specification the compiler implements: its version by name. */
static const char *openmp_name(long date)
{
    static const struct {
        long date;
        const char *name;
    } versions[] = { { 202111, "5.2" }, { 202011, "5.1" }, { 201811, "5.0" }, { 201511, "4.5" },
                     { 201307, "4.0" }, { 201107, "3.1" }, { 200805, "3.0" } };
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        if (date >= versions[i].date)
            return versions[i].name;
    return "before 3.0";
}

size_t dn_build_info(char *buf, size_t size)
{
    char blis[256];
    dn_blis_describe(blis, sizeof blis);
#ifdef _OPENMP
    long date = _OPENMP;
#else
    long date = 0;
#endif
    int threads = omp_get_max_threads();
    int n = snprintf(buf, size, "BLIS %s; OpenMP %s (%ld); %d thread%s by default", blis,
                     openmp_name(date), date, threads, threads == 1 ? "" : "s");
    return n < 0 ? 0 : (size_t)n;
}
