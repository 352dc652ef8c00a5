/*
 * Personal access token helpers: token generation / verification,
 * HMAC-SHA256, UUIDv4, RFC 3339 timestamps, UTF-8 validation.
 *
 * Pure C99 + OpenSSL 3.0; no nginx types.  All functions taking a
 * (pointer, length) pair never read past the given length and do not
 * require NUL-terminated input.
 */

#ifndef _PAT_TOKEN_H_INCLUDED_
#define _PAT_TOKEN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define PAT_TOKEN_RANDOM_LEN   28   /* base62 chars, 28*log2(62) = 166.7 bits */
/* base62 of CRC32, fixed width, left-padded with '0' */
#define PAT_TOKEN_CRC_LEN      6
#define PAT_TOKEN_PREFIX_MAX   32
#define PAT_TOKEN_MAX_LEN                                                     \
    (PAT_TOKEN_PREFIX_MAX + PAT_TOKEN_RANDOM_LEN + PAT_TOKEN_CRC_LEN)
#define PAT_DIGEST_LEN         32
#define PAT_DIGEST_HEX_LEN     64
#define PAT_UUID_LEN           36
#define PAT_RFC3339_LEN        24   /* "2026-11-28T03:20:33.123Z" */


/* 1 if 1..PAT_TOKEN_PREFIX_MAX chars of [A-Za-z0-9_], else 0 */
int ngx_http_auth_pat_prefix_valid(const char *p, size_t len);

/*
 * Writes prefix + 28 random base62 chars + 6-char base62 CRC32 of
 * everything before it, NUL-terminated.  Returns the token length, or -1
 * on RAND failure / out_size too small / invalid prefix.
 */
int ngx_http_auth_pat_token_generate(const char *prefix, size_t prefix_len,
    char *out, size_t out_size);

/*
 * 1 if len == prefix_len + 34, tok starts with prefix, the random part is
 * base62 and the checksum matches; else 0.  tok need not be NUL-terminated.
 */
int ngx_http_auth_pat_token_verify(const char *tok, size_t len,
    const char *prefix, size_t prefix_len);

/*
 * HMAC-SHA256 with the key absorbed once: the SHA-256 states after
 * (K ^ ipad) and (K ^ opad), so that a digest costs two compressions for
 * a short message, and no allocation.  Opaque: the states are OpenSSL's
 * SHA256_CTX, which nginx code need not see.
 */
typedef struct {
    uint64_t  opaque[32];
} ngx_http_auth_pat_hmac_key_t;

int ngx_http_auth_pat_hmac_key_init(ngx_http_auth_pat_hmac_key_t *hk,
    const void *key, size_t key_len);
void ngx_http_auth_pat_hmac_key_digest(const ngx_http_auth_pat_hmac_key_t *hk,
    const void *msg, size_t msg_len, uint8_t out[PAT_DIGEST_LEN]);
void ngx_http_auth_pat_hmac_key_clear(ngx_http_auth_pat_hmac_key_t *hk);

/* lowercase, writes 2n chars, no NUL */
void ngx_http_auth_pat_hex_encode(const uint8_t *in, size_t n, char *out);

/* random version 4 UUID, lowercase, NUL-terminated; 0 ok, -1 fail */
int ngx_http_auth_pat_uuid_v4(char out[PAT_UUID_LEN + 1]);

/* 1 if canonical 8-4-4-4-12 hex (either case), else 0; any version */
int ngx_http_auth_pat_uuid_valid(const char *s, size_t len);

/*
 * Parses YYYY-MM-DD('T'|'t')HH:MM:SS[.frac](Z|z|(+|-)HH:MM) into Unix epoch
 * milliseconds (fraction of 1..9 digits, truncated to ms).  Leap seconds
 * (":60") are rejected.  The UTC instant must lie within
 * 0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z.  0 ok, -1 error.
 */
int ngx_http_auth_pat_rfc3339_parse(const char *s, size_t len, int64_t *ms);

/*
 * UTC "YYYY-MM-DDTHH:MM:SS.mmmZ", NUL-terminated; returns 24, or 0 (and an
 * empty string) if ms is outside years 1..9999
 */
size_t ngx_http_auth_pat_rfc3339_format(int64_t ms,
    char out[PAT_RFC3339_LEN + 1]);

/*
 * 0 if valid UTF-8 (no overlongs, surrogates, > U+10FFFF, truncated
 * sequences), code point count stored in *nchars (if not NULL); with
 * reject_controls, C0, DEL and C1 control characters are rejected too.
 * -1 otherwise.
 */
int ngx_http_auth_pat_utf8_check(const char *s, size_t len, size_t *nchars,
    int reject_controls);


#endif /* _PAT_TOKEN_H_INCLUDED_ */
