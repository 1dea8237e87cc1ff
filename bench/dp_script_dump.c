/*
 * redress-dp-script-dump -- prints the text of one of the dispatcher's Lua scripts (default: the
 * assign script), exactly as redress-dispatcher loads it, so that bench/dispatcher.sh can load the
 * same script into Redis (SCRIPT LOAD) and measure it with redis-benchmark.
 */
#include <stdio.h>
#include <string.h>

#include "dispatcher.h"

int main(int argc, char **argv)
{
    const rd_redis_script *all[] = {&dp_script_assign,   &dp_script_sync,    &dp_script_cancel,
                                    &dp_script_presence, &dp_script_rebuild, &dp_script_now};
    const char *want = "assign";
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        printf("Usage: redress-dp-script-dump [NAME]\n"
               "Prints the text of the dispatcher's Lua script NAME (assign, sync, cancel, presence, rebuild,\n"
               "now; default assign) on stdout.\n");
        return 0;
    }
    if (argc == 2)
        want = argv[1];
    else if (argc > 2) {
        fprintf(stderr, "redress-dp-script-dump: one script name at most (try --help)\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, want) == 0) {
            fputs(all[i]->text, stdout);
            return ferror(stdout) ? 1 : 0;
        }
    fprintf(stderr, "redress-dp-script-dump: no script '%s' (assign, sync, cancel, presence, rebuild, now)\n", want);
    return 2;
}
