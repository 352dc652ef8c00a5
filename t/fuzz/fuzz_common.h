
/*
 * What the libFuzzer targets of t/fuzz/ share: the property check, exact
 * copies of the input (so that ASan sees a read one byte past a field),
 * and reference checks written apart from src/ (UTF-8, scope-tokens), so
 * that an oracle does not repeat the code it checks.
 */


#ifndef _PAT_FUZZ_COMMON_H_INCLUDED_
#define _PAT_FUZZ_COMMON_H_INCLUDED_


#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define check(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "property failed: %s (%s:%d)\n", #cond,           \
                    __FILE__, __LINE__);                                      \
            abort();                                                          \
        }                                                                     \
    } while (0)


/* a copy in a block of exactly len bytes (malloc(0) for none) */

static inline unsigned char *
fuzz_dup(const void *p, size_t len)
{
    unsigned char  *d;

    d = malloc(len);
    if (d == NULL && len) {
        abort();
    }

    if (len) {
        memcpy(d, p, len);
    }

    return d;
}


/* p[0..len) lies within [start, start + size) */

static inline int
fuzz_within(const void *p, size_t len, const void *start, size_t size)
{
    const unsigned char  *s = start, *q = p;

    return q >= s && q <= s + size && len <= (size_t) (s + size - q);
}


/*
 * One UTF-8 sequence at p: the code point, or -1 for an ill-formed one
 * (overlong, surrogate, above U+10FFFF, truncated); *n its length.
 */

static inline long
fuzz_utf8_next(const unsigned char *p, size_t len, size_t *n)
{
    size_t  i, need;
    long    cp, min;

    if (p[0] < 0x80) {
        *n = 1;
        return p[0];
    }

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 2; cp = p[0] & 0x1f; min = 0x80;

    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 3; cp = p[0] & 0x0f; min = 0x800;

    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 4; cp = p[0] & 0x07; min = 0x10000;

    } else {
        return -1;
    }

    if (len < need) {
        return -1;
    }

    for (i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return -1;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return -1;
    }

    *n = need;
    return cp;
}


static inline int
fuzz_is_control(long cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}


/* valid UTF-8 without C0, DEL or C1: the number of characters, or -1 */

static inline long
fuzz_utf8_chars(const unsigned char *p, size_t len)
{
    size_t  i, n;
    long    cp, chars;

    chars = 0;

    for (i = 0; i < len; i += n) {
        cp = fuzz_utf8_next(p + i, len - i, &n);
        if (cp < 0 || fuzz_is_control(cp)) {
            return -1;
        }

        chars++;
    }

    return chars;
}


/* RFC 6749 3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ), here 1 to 64 */

static inline int
fuzz_scope_char(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}


static inline int
fuzz_scope_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > 64) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!fuzz_scope_char(p[i])) {
            return 0;
        }
    }

    return 1;
}


/* scope-tokens separated by single spaces (or nothing at all) */

static inline int
fuzz_scope_list_valid(const unsigned char *p, size_t len)
{
    size_t  i, start;

    if (len == 0) {
        return 1;
    }

    start = 0;

    for (i = 0; i <= len; i++) {
        if (i == len || p[i] == ' ') {
            if (!fuzz_scope_valid(p + start, i - start)) {
                return 0;
            }

            start = i + 1;
        }
    }

    return 1;
}


/* %XX for every byte */

static inline size_t
fuzz_percent_encode(const unsigned char *p, size_t len, char *out)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i;

    for (i = 0; i < len; i++) {
        out[3 * i] = '%';
        out[3 * i + 1] = hex[p[i] >> 4];
        out[3 * i + 2] = hex[p[i] & 0xf];
    }

    return 3 * len;
}


#endif /* _PAT_FUZZ_COMMON_H_INCLUDED_ */
