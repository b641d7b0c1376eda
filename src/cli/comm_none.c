/*
 * comm_none.c — `dagnet train` built without MPI (CMake found none, or -DDAGNET_MPI=OFF):
 * one process. Started by mpirun with more than one process, it says how to get MPI rather
 * than training K copies of the same model side by side.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

int cli_comm_start(cli_comm *c)
{
    *c = (cli_comm){ .rank = 0, .size = 1, .comm = NULL };
    int k = cli_launcher_size();
    if (k > 1) {
        fprintf(stderr,
                "dagnet: started as one of %d processes, but this dagnet was built without MPI: "
                "install Open MPI (apt-get install libopenmpi-dev openmpi-bin, or bash "
                "scripts/setup.sh) and build again (CMake finds it; -DDAGNET_MPI=ON insists)\n",
                k);
        return 2;
    }
    return 0;
}

void cli_comm_end(cli_comm *c, int rc, bool collective)
{
    (void)c;
    (void)rc;
    (void)collective;
}
