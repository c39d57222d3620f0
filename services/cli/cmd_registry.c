/* rollcall registry import — placeholder, replaced below. */
#include "cli.h"
#include <stdio.h>
int cmd_registry(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "not yet\n");
    return CLI_FAILED;
}
