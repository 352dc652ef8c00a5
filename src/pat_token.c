/*
 * Personal access token helpers, see pat_token.h.
 */


#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pat_token.h"


#define PAT_MS_PER_DAY  INT64_C(86400000)

/* 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z */
#define PAT_MS_MIN      INT64_C(-62135596800000)
#define PAT_MS_MAX      INT64_C(253402300799999)

/* the largest multiple of 62 that fits in a byte: 4 * 62 */
#define PAT_RAND_LIMIT  248

/* a Gregorian calendar repeats every 400 years */
#define PAT_YEAR_SHIFT  400


static int pat_base62_value(unsigned char c);
static int pat_hex_value(unsigned char c);
static int pat_digits(const char *s, size_t n, unsigned *v);
static int pat_is_leap(int64_t y);
static unsigned pat_days_in_month(int64_t y, unsigned m);
static int64_t pat_days_before_year(int64_t y);
static int64_t pat_days_from_civil(int64_t y, unsigned m, unsigned d);
static void pat_civil_from_days(int64_t days, int64_t *y, unsigned *m,
    unsigned *d);
static void pat_put_digits(char *p, unsigned v, size_t n);


static const char  pat_base62_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const char  pat_hex_alphabet[] = "0123456789abcdef";

/* reflected CRC32 (polynomial 0xEDB88320), processed 4 bits at a time */
static const uint32_t  pat_crc32_nibble[16] = {
    0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac,
    0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
    0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
    0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c
};

/* days before the first of each month in a non-leap year */
static const unsigned  pat_month_start[12] = {
    0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334
};

static const unsigned  pat_month_days[12] = {
    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
};


uint32_t
pat_crc32(const void *data, size_t len)
{
    size_t                i;
    uint32_t              crc;
    const unsigned char  *p;

    p = data;
    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ pat_crc32_nibble[crc & 0x0f];
        crc = (crc >> 4) ^ pat_crc32_nibble[crc & 0x0f];
    }

    return crc ^ 0xffffffff;
}


static int
pat_base62_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'Z') {
        return c - 'A' + 10;
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 36;
    }

    return -1;
}


void
pat_base62_encode_u32(uint32_t v, char out[PAT_TOKEN_CRC_LEN])
{
    size_t  i;

    /* 62^6 > 2^32, so six digits always suffice */

    for (i = PAT_TOKEN_CRC_LEN; i > 0; i--) {
        out[i - 1] = pat_base62_alphabet[v % 62];
        v /= 62;
    }
}


int
pat_base62_decode_u32(const char *s, size_t len, uint32_t *v)
{
    int       d;
    size_t    i;
    uint64_t  acc;

    if (s == NULL || len == 0) {
        return -1;
    }

    acc = 0;

    for (i = 0; i < len; i++) {
        d = pat_base62_value((unsigned char) s[i]);
        if (d < 0) {
            return -1;
        }

        /* acc <= 0xffffffff here, so this cannot overflow 64 bits */
        acc = acc * 62 + (uint64_t) d;

        if (acc > 0xffffffff) {
            return -1;
        }
    }

    if (v != NULL) {
        *v = (uint32_t) acc;
    }

    return 0;
}


int
pat_prefix_valid(const char *p, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (p == NULL || len == 0 || len > PAT_TOKEN_PREFIX_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) p[i];

        if (c != '_' && pat_base62_value(c) < 0) {
            return 0;
        }
    }

    return 1;
}


int
pat_token_generate(const char *prefix, size_t prefix_len, char *out,
    size_t out_size)
{
    size_t         i, n, body, total;
    unsigned char  rnd[64];

    if (out == NULL) {
        return -1;
    }

    if (!pat_prefix_valid(prefix, prefix_len)) {
        goto failed;
    }

    body = prefix_len + PAT_TOKEN_RANDOM_LEN;
    total = body + PAT_TOKEN_CRC_LEN;

    if (out_size < total + 1) {
        goto failed;
    }

    memcpy(out, prefix, prefix_len);

    /*
     * rejection sampling: only bytes below 248 (= 4 * 62) are used, so
     * that "byte % 62" is uniformly distributed
     */

    n = 0;

    while (n < PAT_TOKEN_RANDOM_LEN) {

        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            OPENSSL_cleanse(rnd, sizeof(rnd));
            OPENSSL_cleanse(out, total);
            goto failed;
        }

        for (i = 0; i < sizeof(rnd) && n < PAT_TOKEN_RANDOM_LEN; i++) {
            if (rnd[i] < PAT_RAND_LIMIT) {
                out[prefix_len + n++] = pat_base62_alphabet[rnd[i] % 62];
            }
        }
    }

    OPENSSL_cleanse(rnd, sizeof(rnd));

    pat_base62_encode_u32(pat_crc32(out, body), out + body);
    out[total] = '\0';

    return (int) total;

failed:

    if (out_size > 0) {
        out[0] = '\0';
    }

    return -1;
}


int
pat_token_verify(const char *tok, size_t len, const char *prefix,
    size_t prefix_len)
{
    char    crc[PAT_TOKEN_CRC_LEN];
    size_t  i, body;

    if (tok == NULL || (prefix == NULL && prefix_len != 0)) {
        return 0;
    }

    if (prefix_len > len
        || len - prefix_len != PAT_TOKEN_RANDOM_LEN + PAT_TOKEN_CRC_LEN)
    {
        return 0;
    }

    if (prefix_len != 0 && memcmp(tok, prefix, prefix_len) != 0) {
        return 0;
    }

    body = len - PAT_TOKEN_CRC_LEN;

    for (i = prefix_len; i < body; i++) {
        if (pat_base62_value((unsigned char) tok[i]) < 0) {
            return 0;
        }
    }

    pat_base62_encode_u32(pat_crc32(tok, body), crc);

    return CRYPTO_memcmp(crc, tok + body, PAT_TOKEN_CRC_LEN) == 0;
}


int
pat_hmac_sha256(const void *key, size_t key_len, const void *msg,
    size_t msg_len, uint8_t out[PAT_DIGEST_LEN])
{
    unsigned int                 out_len;
    static const unsigned char   empty[1] = { 0 };

    if (out == NULL || key_len > INT_MAX) {
        return -1;
    }

    if (key == NULL) {
        if (key_len != 0) {
            return -1;
        }

        key = empty;
    }

    if (msg == NULL) {
        if (msg_len != 0) {
            return -1;
        }

        msg = empty;
    }

    out_len = 0;

    if (HMAC(EVP_sha256(), key, (int) key_len, msg, msg_len, out, &out_len)
        == NULL
        || out_len != PAT_DIGEST_LEN)
    {
        return -1;
    }

    return 0;
}


void
pat_hex_encode(const uint8_t *in, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        out[2 * i] = pat_hex_alphabet[in[i] >> 4];
        out[2 * i + 1] = pat_hex_alphabet[in[i] & 0x0f];
    }
}


int
pat_uuid_v4(char out[PAT_UUID_LEN + 1])
{
    size_t         i, j;
    unsigned char  b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        OPENSSL_cleanse(b, sizeof(b));
        out[0] = '\0';
        return -1;
    }

    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);     /* version 4 */
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);     /* variant 10xx */

    for (i = 0, j = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[j++] = '-';
        }

        out[j++] = pat_hex_alphabet[b[i] >> 4];
        out[j++] = pat_hex_alphabet[b[i] & 0x0f];
    }

    out[j] = '\0';

    OPENSSL_cleanse(b, sizeof(b));

    return 0;
}


static int
pat_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


int
pat_uuid_valid(const char *s, size_t len)
{
    size_t  i;

    if (s == NULL || len != PAT_UUID_LEN) {
        return 0;
    }

    for (i = 0; i < PAT_UUID_LEN; i++) {

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }

            continue;
        }

        if (pat_hex_value((unsigned char) s[i]) < 0) {
            return 0;
        }
    }

    return 1;
}


/* exactly n ASCII digits */

static int
pat_digits(const char *s, size_t n, unsigned *v)
{
    size_t    i;
    unsigned  r;

    r = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        r = r * 10 + (unsigned) (s[i] - '0');
    }

    *v = r;

    return 0;
}


static int
pat_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}


static unsigned
pat_days_in_month(int64_t y, unsigned m)
{
    if (m == 2 && pat_is_leap(y)) {
        return 29;
    }

    return pat_month_days[m - 1];
}


/*
 * Days from 0001-01-01 to y-01-01 in the proleptic Gregorian calendar,
 * for y >= 1.
 */

static int64_t
pat_days_before_year(int64_t y)
{
    int64_t  n;

    n = y - 1;

    return n * 365 + n / 4 - n / 100 + n / 400;
}


/*
 * Days since 1970-01-01 of the date y-m-d.  Both the date and the epoch
 * are moved 400 years forward (which does not change the calendar) so
 * that year 0 and the divisions above work on positive numbers only.
 */

static int64_t
pat_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t  days;

    days = pat_days_before_year(y + PAT_YEAR_SHIFT)
           - pat_days_before_year(1970 + PAT_YEAR_SHIFT);

    days += pat_month_start[m - 1] + (m > 2 && pat_is_leap(y)) + d - 1;

    return days;
}


/*
 * The inverse of the above; days must not precede 0400-01-01 BCE (year
 * -399), which is always the case for years 1..9999.
 */

static void
pat_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t   n, q400, q100, q4, q1, year;
    unsigned  mon, dim;

    /* days since 0001-01-01 of the shifted calendar */
    n = days + pat_days_before_year(1970 + PAT_YEAR_SHIFT);

    q400 = n / 146097;          /* 400 years */
    n %= 146097;

    q100 = n / 36524;           /* 100 years, the last one is a day longer */
    if (q100 == 4) {
        q100 = 3;
    }
    n -= q100 * 36524;

    q4 = n / 1461;              /* 4 years */
    n %= 1461;

    q1 = n / 365;               /* 1 year, the last one may be a leap year */
    if (q1 == 4) {
        q1 = 3;
    }
    n -= q1 * 365;

    year = q400 * 400 + q100 * 100 + q4 * 4 + q1 + 1 - PAT_YEAR_SHIFT;

    /* n is now the 0-based day of the year */

    for (mon = 1; mon < 12; mon++) {
        dim = pat_days_in_month(year, mon);

        if (n < (int64_t) dim) {
            break;
        }

        n -= dim;
    }

    *y = year;
    *m = mon;
    *d = (unsigned) n + 1;
}


int
pat_rfc3339_parse(const char *s, size_t len, int64_t *ms)
{
    int64_t   t, offset;
    size_t    pos, nfrac;
    unsigned  year, mon, day, hour, min, sec, frac, oh, om;

    /* the shortest form is "YYYY-MM-DDTHH:MM:SSZ" */

    if (s == NULL || len < 20) {
        return -1;
    }

    if (pat_digits(s, 4, &year) != 0
        || s[4] != '-'
        || pat_digits(s + 5, 2, &mon) != 0
        || s[7] != '-'
        || pat_digits(s + 8, 2, &day) != 0
        || (s[10] != 'T' && s[10] != 't')
        || pat_digits(s + 11, 2, &hour) != 0
        || s[13] != ':'
        || pat_digits(s + 14, 2, &min) != 0
        || s[16] != ':'
        || pat_digits(s + 17, 2, &sec) != 0)
    {
        return -1;
    }

    pos = 19;
    frac = 0;

    if (s[pos] == '.') {
        pos++;
        nfrac = 0;

        while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
            if (nfrac < 3) {
                frac = frac * 10 + (unsigned) (s[pos] - '0');
            }

            nfrac++;
            pos++;
        }

        if (nfrac == 0 || nfrac > 9) {
            return -1;
        }

        for ( /* void */ ; nfrac < 3; nfrac++) {
            frac *= 10;
        }
    }

    if (pos >= len) {
        return -1;
    }

    if (s[pos] == 'Z' || s[pos] == 'z') {
        offset = 0;
        pos++;

    } else if (s[pos] == '+' || s[pos] == '-') {

        if (len - pos < 6
            || pat_digits(s + pos + 1, 2, &oh) != 0
            || s[pos + 3] != ':'
            || pat_digits(s + pos + 4, 2, &om) != 0
            || oh > 23
            || om > 59)
        {
            return -1;
        }

        offset = ((int64_t) oh * 60 + om) * 60000;

        if (s[pos] == '-') {
            offset = -offset;
        }

        pos += 6;

    } else {
        return -1;
    }

    if (pos != len) {
        return -1;
    }

    /* leap seconds (":60") are deliberately not supported */

    if (mon < 1 || mon > 12
        || day < 1 || day > pat_days_in_month(year, mon)
        || hour > 23 || min > 59 || sec > 59)
    {
        return -1;
    }

    t = pat_days_from_civil(year, mon, day) * PAT_MS_PER_DAY
        + (((int64_t) hour * 60 + min) * 60 + sec) * 1000 + frac;

    /* local time = UTC + offset */
    t -= offset;

    if (t < PAT_MS_MIN || t > PAT_MS_MAX) {
        return -1;
    }

    if (ms != NULL) {
        *ms = t;
    }

    return 0;
}


static void
pat_put_digits(char *p, unsigned v, size_t n)
{
    while (n > 0) {
        p[--n] = (char) ('0' + v % 10);
        v /= 10;
    }
}


size_t
pat_rfc3339_format(int64_t ms, char out[PAT_RFC3339_LEN + 1])
{
    int64_t   days, rem, year;
    unsigned  mon, day, msec, sec;

    if (ms < PAT_MS_MIN || ms > PAT_MS_MAX) {
        out[0] = '\0';
        return 0;
    }

    /* floor division */

    days = ms / PAT_MS_PER_DAY;
    rem = ms % PAT_MS_PER_DAY;

    if (rem < 0) {
        rem += PAT_MS_PER_DAY;
        days--;
    }

    pat_civil_from_days(days, &year, &mon, &day);

    msec = (unsigned) (rem % 1000);
    sec = (unsigned) (rem / 1000);

    pat_put_digits(out, (unsigned) year, 4);
    out[4] = '-';
    pat_put_digits(out + 5, mon, 2);
    out[7] = '-';
    pat_put_digits(out + 8, day, 2);
    out[10] = 'T';
    pat_put_digits(out + 11, sec / 3600, 2);
    out[13] = ':';
    pat_put_digits(out + 14, sec / 60 % 60, 2);
    out[16] = ':';
    pat_put_digits(out + 17, sec % 60, 2);
    out[19] = '.';
    pat_put_digits(out + 20, msec, 3);
    out[23] = 'Z';
    out[24] = '\0';

    return PAT_RFC3339_LEN;
}


int
pat_timingsafe_equal(const void *a, const void *b, size_t n)
{
    if (n == 0) {
        return 1;
    }

    return CRYPTO_memcmp(a, b, n) == 0;
}


int
pat_utf8_check(const char *s, size_t len, size_t *nchars,
    int reject_controls)
{
    size_t                i, k, need, count;
    uint32_t              cp, min;
    unsigned char         c;
    const unsigned char  *p;

    if (s == NULL && len != 0) {
        return -1;
    }

    p = (const unsigned char *) s;
    count = 0;
    i = 0;

    while (i < len) {
        c = p[i];

        if (c < 0x80) {
            cp = c;
            need = 0;
            min = 0;

        } else if (c >= 0xc2 && c <= 0xdf) {
            /* 0xc0 and 0xc1 could only start overlong sequences */
            cp = c & 0x1f;
            need = 1;
            min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0f;
            need = 2;
            min = 0x800;

        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07;
            need = 3;
            min = 0x10000;

        } else {
            /* stray continuation byte, 0xc0, 0xc1, 0xf5..0xff */
            return -1;
        }

        if (len - i - 1 < need) {
            return -1;
        }

        for (k = 1; k <= need; k++) {
            c = p[i + k];

            if ((c & 0xc0) != 0x80) {
                return -1;
            }

            cp = (cp << 6) | (c & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return -1;
        }

        if (reject_controls
            && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)))
        {
            return -1;
        }

        i += need + 1;
        count++;
    }

    if (nchars != NULL) {
        *nchars = count;
    }

    return 0;
}
