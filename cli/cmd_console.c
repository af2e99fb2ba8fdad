/* placeholder replaced below */
#include "cli.h"
int cmd_console(int argc, char **argv)
{
    (void)argc, (void)argv;
    return cli_usage_error("console", "not built yet");
}
