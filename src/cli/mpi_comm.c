/*
 * mpi_comm.c — the MPI communicator of `mpirun -np K dagnet train` (docs/distributed.md): a
 * dn_comm (include/dagnet.h) whose allreduce is MPI_Allreduce(MPI_IN_PLACE, MPI_FLOAT,
 * MPI_SUM) and whose broadcast is MPI_Bcast, on a duplicate of MPI_COMM_WORLD. Built only when
 * CMake finds MPI (DAGNET_MPI); the library itself never links MPI.
 *
 * Errors: the communicator returns errors (MPI_ERRORS_RETURN) instead of MPI's default of
 * aborting inside the call, so that the message reaches the trainer and the user with the
 * rank; cli_comm_end then aborts the job (MPI_Abort) unless every rank failed together, since
 * a rank left inside a collective would wait forever. A rank killed outright is seen by mpirun,
 * which ends the others.
 */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"

static MPI_Comm world = MPI_COMM_NULL;
static dn_comm comm;

static dn_status mpi_failed(int code, const char *call, char *msg, size_t msg_size)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, text, &len);
    snprintf(msg, msg_size, "%s: %s", call, text);
    return DN_ERR_IO;
}

/* MPI counts are ints: larger buffers go in pieces. */
static dn_status mpi_allreduce_sum(void *ctx, float *buf, size_t n, char *msg, size_t msg_size)
{
    (void)ctx;
    for (size_t at = 0; at < n;) {
        int len = n - at > (size_t)INT_MAX ? INT_MAX : (int)(n - at);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + at, len, MPI_FLOAT, MPI_SUM, world);
        if (rc != MPI_SUCCESS)
            return mpi_failed(rc, "MPI_Allreduce", msg, msg_size);
        at += (size_t)len;
    }
    return DN_OK;
}

static dn_status mpi_broadcast(void *ctx, void *buf, size_t bytes, int root, char *msg,
                               size_t msg_size)
{
    (void)ctx;
    for (size_t at = 0; at < bytes;) {
        int len = bytes - at > (size_t)INT_MAX ? INT_MAX : (int)(bytes - at);
        int rc = MPI_Bcast((char *)buf + at, len, MPI_BYTE, root, world);
        if (rc != MPI_SUCCESS)
            return mpi_failed(rc, "MPI_Bcast", msg, msg_size);
        at += (size_t)len;
    }
    return DN_OK;
}

int cli_comm_start(cli_comm *c)
{
    *c = (cli_comm){ .rank = 0, .size = 1, .comm = NULL };
    /* Without a launcher nothing changes: no MPI at all (a singleton MPI_Init would start
     * Open MPI's runtime for nothing). */
    if (cli_launcher_size() < 1)
        return 0;
    int rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "dagnet: MPI_Init failed (error %d)\n", rc);
        return 1;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &world);
    MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(world, &c->rank);
    MPI_Comm_size(world, &c->size);
    if (c->size > 1) {
        comm = (dn_comm){ .ctx = NULL,
                          .rank = c->rank,
                          .size = c->size,
                          .allreduce_sum = mpi_allreduce_sum,
                          .broadcast = mpi_broadcast };
        c->comm = &comm;
    }
    return 0;
}

void cli_comm_end(cli_comm *c, int rc, bool collective)
{
    if (world == MPI_COMM_NULL)
        return;
    fflush(stdout);
    fflush(stderr);
    if (rc != 0 && !collective && c->size > 1) {
        /* Give the other ranks' messages a moment to reach the terminal first. */
        sleep(1);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Comm_free(&world);
    MPI_Finalize();
}
