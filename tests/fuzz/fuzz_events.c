/*
 * fuzz_events -- libFuzzer target for the internal event frames: every byte string that could
 * reach a classifier or dispatcher from intake's PUSH/PUB or the classifier's PUSH goes through
 * rd_ticket_event_decode. Nothing may crash, leak or read out of bounds; whatever is accepted
 * must carry a canonical lower-case UUID and a NUL-terminated kind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "rd_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_ticket_event ev;
    if (!rd_ticket_event_decode(data, size, &ev))
        return 0;
    uuid_t u;
    char canon[37];
    if (strlen(ev.ticket_id) != 36 || uuid_parse(ev.ticket_id, u) != 0)
        abort();
    uuid_unparse_lower(u, canon);
    if (strcmp(canon, ev.ticket_id) != 0)
        abort();
    if (memchr(ev.kind, '\0', sizeof(ev.kind)) == NULL)
        abort();
    return 0;
}
