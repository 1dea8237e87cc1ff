/*
 * fuzz_config -- libFuzzer target for the configuration file parser (rd_config_load): the bytes
 * become a file (a memfd, read back through /proc/self/fd), and whatever loads is read with every
 * getter. A refused file must come with a message; nothing may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rd_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keys the dictionary's sections and names combine into; getters on absent keys take defaults. */
static const char *const keys[] = {"a", "pg.dsn", "intake.bind", "intake.writers", "x.y", "s.flag", "k"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_config", 0);
    if (fd < 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    char err[256];
    rd_config *cfg = rd_config_load(path, err, sizeof(err));
    close(fd);
    if (cfg == NULL) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *s = rd_config_str(cfg, keys[i], "def");
        if (s == NULL) /* the environment may set any of them (REDRESS_PG_DSN): no length bound */
            abort();
        int64_t n;
        bool b;
        if (!rd_config_int(cfg, keys[i], 7, -1000, 1000, &n, err, sizeof(err)) && err[0] == '\0')
            abort();
        if (!rd_config_bool(cfg, keys[i], true, &b, err, sizeof(err)) && err[0] == '\0')
            abort();
    }
    rd_config_destroy(&cfg);
    return 0;
}
