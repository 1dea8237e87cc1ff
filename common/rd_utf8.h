/*
 * rd_utf8.h -- the one UTF-8 decoder.
 *
 * Header-only and inline on purpose: the text model calls it once per character on its hot path,
 * and the fuzz targets compile single modules without the rest of the library.
 *
 * rd_utf8_decode() accepts exactly the well-formed sequences of RFC 3629: the second-byte ranges
 * below rule out overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and code points above
 * U+10FFFF; a sequence cut short by the end of the buffer is invalid too.
 */
#ifndef RD_UTF8_H
#define RD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the sequence at p (n > 0 bytes left) into *cp and returns its length in bytes, or 0
 * when p does not start a well-formed sequence. */
static inline size_t rd_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    uint32_t c;

    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2;
        c = p[0] & 0x1F;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3;
        c = p[0] & 0x0F;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4;
        c = p[0] & 0x07;
    } else {
        return 0;
    }
    if (p[0] == 0xE0)
        lo = 0xA0;
    else if (p[0] == 0xED)
        hi = 0x9F;
    else if (p[0] == 0xF0)
        lo = 0x90;
    else if (p[0] == 0xF4)
        hi = 0x8F;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    *cp = c;
    return len;
}

#endif
