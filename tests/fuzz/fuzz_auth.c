/*
 * fuzz_auth -- libFuzzer target for the gateway permission lists an operator types into
 * `redressctl keys register --events/--channels` and intake reads back from the gateways table:
 * rd_auth_parse_events and rd_auth_parse_channels on arbitrary text, and the key check
 * rd_z85_key_valid. Whatever parses must format back to a list that parses to the same mask;
 * a refusal must come with a message. Nothing may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundTrip(bool (*parse)(const char *, uint32_t *, char *, int), void (*format)(uint32_t, char *, size_t),
                      const char *text)
{
    uint32_t mask = 0, again = 0;
    char err[256] = "";
    if (!parse(text, &mask, err, sizeof(err))) {
        if (err[0] == '\0')
            abort();
        return;
    }
    char list[512];
    format(mask, list, sizeof(list));
    if (!parse(list, &again, err, sizeof(err)) || again != mask)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* inputs with a NUL are just shorter strings, as from PostgreSQL text */
    roundTrip(rd_auth_parse_events, rd_auth_format_events, text);
    roundTrip(rd_auth_parse_channels, rd_auth_format_channels, text);
    if (rd_z85_key_valid(text) && strlen(text) != RD_Z85_KEY_LEN)
        abort();
    free(text);
    return 0;
}
