/*
 * utf8.h - the one check of text OMS stores: strict UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), which is exactly
 * what PostgreSQL accepts, so text that passes here can be stored by every
 * service. The message boundary (lib/consumer_msg), the CSV reader
 * (lib/order_csv), the services' event checks and omsctl all use it.
 */
#ifndef OMS_UTF8_H
#define OMS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1-4) of the UTF-8 character at s[0..len), its code point in *cp;
 * 0 when the bytes there are not one (cut short, overlong, a surrogate, past
 * U+10FFFF, a stray continuation byte) or len is 0. Borrows s. */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* False when bytes[0..len) is strict UTF-8; true otherwise, with the offset
 * of the first byte that does not begin a valid character in *bad_offset
 * (may be NULL). Borrows bytes. */
bool utf8_problem(const void *bytes, size_t len, size_t *bad_offset);

/* True when the NUL-terminated s is strict UTF-8. Borrows s. */
bool utf8_valid(const char *s);

/* True for C0 controls, DEL and C1 controls (U+0080..U+009F). */
bool utf8_is_control(uint32_t cp);

#endif
