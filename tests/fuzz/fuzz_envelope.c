/*
 * fuzz_envelope -- libFuzzer target for the one door: every byte string a gateway could send goes
 * through rd_envelope_decode, and whatever decodes through rd_envelope_validate and the digest.
 * Nothing may crash, leak or read out of bounds, and a verdict always carries a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rd_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_verdict v;
    Redress__V1__Envelope *env = rd_envelope_decode(data, size, RD_MAX_FRAME_BYTES, &v);
    if (env == NULL) {
        if (v.message[0] == '\0')
            abort();
        return 0;
    }
    if (!rd_envelope_validate(env, 1795000000000LL, &v) && v.message[0] == '\0')
        abort();
    uint8_t digest[32];
    rd_envelope_digest(env, digest);
    redress__v1__envelope__free_unpacked(env, NULL);
    return 0;
}
