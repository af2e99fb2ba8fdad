/*
 * utf8.c - strict UTF-8 decoding (utf8.h). One decoder for every check, so
 * the boundary of the consumers and the CSV reader cannot disagree on what
 * PostgreSQL will accept.
 */
#include "utf8.h"

#include <string.h>

size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (len == 0)
        return 0;
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (n == 0 || n > len)
        return 0;
    uint32_t c = n == 1 ? s[0] : s[0] & (0x7fu >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[k] & 0x3fu);
    }
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

bool utf8_problem(const void *bytes, size_t len, size_t *bad_offset)
{
    const unsigned char *s = bytes;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            if (bad_offset != NULL)
                *bad_offset = i;
            return true;
        }
        i += n;
    }
    return false;
}

bool utf8_valid(const char *s)
{
    return !utf8_problem(s, strlen(s), NULL);
}

bool utf8_is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0);
}
