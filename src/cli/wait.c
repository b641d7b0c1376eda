/*
 * wait.c — how the command's OpenMP threads wait for work, when the user has not said.
 *
 * Between two parallel regions a worker thread of libgomp (GCC's OpenMP runtime) spins on a
 * flag before it sleeps: by default GOMP_SPINCOUNT = 300,000 rounds of a pause instruction,
 * a few hundred microseconds. Inside a step the library's crew waits its own way
 * (runtime/parallel.h); the step itself is one region, and between two steps libgomp's wait
 * applies. Two processes on the same cores: each process's spinning threads burn the time
 * slices the other process's working threads need, and two LeNet-5 trainings together ran at
 * 0.18 of one alone (issue 14) when a step was forty regions.
 *
 * The runtime reads its settings once, when it is loaded, before main: the command can only
 * choose for itself by setting the variable and executing itself again. It does that only
 * when the user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT (theirs always win), and
 * the library never does it (a host program's OpenMP settings are its own). The spin count
 * is DAGNET_SPINCOUNT: long enough to bridge the gap between two kernels of one step, short
 * enough that an idle thread yields its core within tens of microseconds.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"

/* Rounds of libgomp's spin loop before a waiting thread sleeps (docs/performance.md). */
#define DAGNET_SPINCOUNT "1000"
/* Marks the re-executed command, which then knows the spin count is its own choice. */
#define MARK "DAGNET_CHOSE_SPINCOUNT"

static bool chosen; /* this process runs with dagnet's spin count */

void cli_choose_wait_policy(char **argv)
{
    if (getenv(MARK)) {
        chosen = true;
        unsetenv(MARK); /* programs the command starts see the user's environment */
        return;
    }
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("GOMP_SPINCOUNT", DAGNET_SPINCOUNT, 1) != 0 || setenv(MARK, "1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* No /proc (or exec refused): run on with the runtime's defaults, as before. */
    unsetenv("GOMP_SPINCOUNT");
    unsetenv(MARK);
}

void cli_describe_wait_policy(char *buf, size_t size)
{
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if (chosen)
        snprintf(buf, size, "GOMP_SPINCOUNT=%s (set by dagnet)", spin ? spin : "?");
    else if (policy && spin)
        snprintf(buf, size, "OMP_WAIT_POLICY=%s, GOMP_SPINCOUNT=%s (yours)", policy, spin);
    else if (policy || spin)
        snprintf(buf, size, "%s=%s (yours)", policy ? "OMP_WAIT_POLICY" : "GOMP_SPINCOUNT",
                 policy ? policy : spin);
    else
        snprintf(buf, size, "the OpenMP runtime's default");
}
