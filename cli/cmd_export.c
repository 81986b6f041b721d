/* cmd_export.c — `uflow export`: a model file as a torch zip checkpoint (uflow_interop.h). */
#include "cli.h"
#include "uflow_interop.h"

#include <stdio.h>
#include <string.h>

int cmd_export(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "uflow export: not implemented yet\n");
    return CLI_FAIL;
}
