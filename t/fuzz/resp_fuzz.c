
/*
 * libFuzzer target: RESP replies, read by hiredis' reader (the static
 * libhiredis.a, 0.14.1) into redisReply objects of the module's
 * allocator (src/ngx_http_auth_pat_redis_resp.c).
 *
 * The input is what Redis sends.  It is fed whole, one byte at a time,
 * and in chunks whose sizes come from the input's own bytes; after each
 * feed every reply is pulled until there is none, as the module does,
 * and the reading stops at the first error, where the module resets the
 * connection.  Properties:
 *   - the replies (type, length and bytes, integer, elements, in depth)
 *     and the error (err, errstr) are the same however the input is cut;
 *   - every reply is well-formed: a known type, a NUL after each string,
 *     no NULL element in a complete array;
 *   - the replies, written back as RESP, read back the same, without
 *     error;
 *   - nothing leaks: each reply is freed as it comes, the reader at the
 *     end, then the module's free list is drained (LeakSanitizer).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_redis_resp.h"

#include "fuzz_common.h"


typedef struct {
    unsigned char  *data;
    size_t          len;
    size_t          cap;
} fuzz_buf_t;


typedef struct {
    fuzz_buf_t      trace;     /* the replies, serialized */
    fuzz_buf_t      resp;      /* the replies, as RESP */
    int             err;
    char            errstr[128];
    size_t          replies;
} fuzz_read_t;


static void
buf_add(fuzz_buf_t *b, const void *p, size_t len)
{
    size_t          cap;
    unsigned char  *d;

    if (b->len + len > b->cap) {
        cap = b->cap ? b->cap : 256;

        while (cap < b->len + len) {
            cap *= 2;
        }

        d = realloc(b->data, cap);
        if (d == NULL) {
            abort();
        }

        b->data = d;
        b->cap = cap;
    }

    if (len) {
        memcpy(b->data + b->len, p, len);
    }

    b->len += len;
}


static void
buf_u64(fuzz_buf_t *b, uint64_t v)
{
    buf_add(b, &v, sizeof(v));
}


static void
buf_printf(fuzz_buf_t *b, const char *fmt, long long v)
{
    char  tmp[64];
    int   n;

    n = snprintf(tmp, sizeof(tmp), fmt, v);
    check(n > 0 && (size_t) n < sizeof(tmp));
    buf_add(b, tmp, n);
}


/* a complete reply: checked, serialized, and written back as RESP */

static void
reply_walk(redisReply *r, fuzz_read_t *rd, unsigned depth)
{
    size_t          i;
    unsigned char   t;

    check(r != NULL);
    check(depth <= 8);

    t = (unsigned char) r->type;
    buf_add(&rd->trace, &t, 1);

    switch (r->type) {

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        check(r->str != NULL);
        check(r->str[r->len] == '\0');
        check(r->elements == 0);

        buf_u64(&rd->trace, r->len);
        buf_add(&rd->trace, r->str, r->len);

        if (r->type == REDIS_REPLY_STRING) {
            buf_printf(&rd->resp, "$%lld\r\n", (long long) r->len);
            buf_add(&rd->resp, r->str, r->len);

        } else {
            /* a line: hiredis ends it at the first CR LF */
            check(r->len < 2 || memmem(r->str, r->len, "\r\n", 2) == NULL);
            buf_add(&rd->resp, r->type == REDIS_REPLY_STATUS ? "+" : "-", 1);
            buf_add(&rd->resp, r->str, r->len);
        }

        buf_add(&rd->resp, "\r\n", 2);
        break;

    case REDIS_REPLY_INTEGER:
        check(r->str == NULL && r->elements == 0);
        buf_u64(&rd->trace, (uint64_t) r->integer);
        buf_printf(&rd->resp, ":%lld\r\n", r->integer);
        break;

    case REDIS_REPLY_NIL:
        check(r->str == NULL && r->elements == 0);
        buf_add(&rd->resp, "$-1\r\n", 5);
        break;

    case REDIS_REPLY_ARRAY:
        check(r->str == NULL);
        check(r->elements == 0 || r->element != NULL);
        buf_u64(&rd->trace, r->elements);
        buf_printf(&rd->resp, "*%lld\r\n", (long long) r->elements);

        for (i = 0; i < r->elements; i++) {
            reply_walk(r->element[i], rd, depth + 1);
        }

        break;

    default:
        check(0 && "unknown reply type");
    }
}


/*
 * Feeds the chunks (sizes from cut(), whole if NULL), pulling every
 * reply after each feed; stops at the first error.
 */

typedef size_t (*fuzz_cut_pt)(const uint8_t *data, size_t size, size_t k);


static void
read_all(const uint8_t *data, size_t size, fuzz_cut_pt cut, fuzz_read_t *rd)
{
    int           rc;
    void         *obj;
    size_t        pos, n, k;
    redisReader  *reader;

    memset(rd, 0, sizeof(*rd));

    reader = ngx_http_auth_pat_redis_resp_reader();
    check(reader != NULL);

    pos = 0;
    k = 0;

    while (pos < size) {
        n = cut ? cut(data, size, k++) : size;
        if (n > size - pos) {
            n = size - pos;
        }

        if (redisReaderFeed(reader, (const char *) data + pos, n)
            != REDIS_OK)
        {
            break;
        }

        pos += n;

        for ( ;; ) {
            obj = NULL;
            rc = redisReaderGetReply(reader, &obj);

            if (rc != REDIS_OK) {
                check(obj == NULL);
                break;
            }

            if (obj == NULL) {
                break;
            }

            reply_walk(obj, rd, 0);
            rd->replies++;
            ngx_http_auth_pat_redis_resp_free(obj);
        }

        if (reader->err) {
            break;
        }
    }

    rd->err = reader->err;
    memcpy(rd->errstr, reader->errstr, sizeof(rd->errstr));
    rd->errstr[sizeof(rd->errstr) - 1] = '\0';

    if (rd->err == 0) {
        check(rd->errstr[0] == '\0');
    }

    redisReaderFree(reader);
}


static size_t
cut_bytes(const uint8_t *data, size_t size, size_t k)
{
    return 1;
}


/* 1 to 16 bytes, from the input's bytes in turn */

static size_t
cut_input(const uint8_t *data, size_t size, size_t k)
{
    return (data[k % size] & 0x0f) + 1;
}


/* from the bytes, read backwards: 1 to 64 */

static size_t
cut_input_wide(const uint8_t *data, size_t size, size_t k)
{
    return (data[size - 1 - k % size] * 7u) % 64 + 1;
}


static void
read_free(fuzz_read_t *rd)
{
    free(rd->trace.data);
    free(rd->resp.data);
}


static void
read_same(fuzz_read_t *a, fuzz_read_t *b)
{
    check(a->replies == b->replies);
    check(a->trace.len == b->trace.len);
    check(a->trace.len == 0
          || memcmp(a->trace.data, b->trace.data, a->trace.len) == 0);
    check(a->err == b->err);
    check(strcmp(a->errstr, b->errstr) == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t      *in;
    fuzz_read_t   whole, part, again;

    if (size == 0) {
        return 0;
    }

    /* a copy of the exact size: the reader copies it, but who knows */
    in = fuzz_dup(data, size);

    read_all(in, size, NULL, &whole);

    read_all(in, size, cut_bytes, &part);
    read_same(&whole, &part);
    read_free(&part);

    read_all(in, size, cut_input, &part);
    read_same(&whole, &part);
    read_free(&part);

    read_all(in, size, cut_input_wide, &part);
    read_same(&whole, &part);
    read_free(&part);

    /* the replies, written back, read back the same and cleanly */
    if (whole.resp.len) {
        read_all(whole.resp.data, whole.resp.len, NULL, &again);
        check(again.err == 0);
        check(again.replies == whole.replies);
        check(again.trace.len == whole.trace.len);
        check(memcmp(again.trace.data, whole.trace.data, whole.trace.len)
              == 0);
        check(again.resp.len == whole.resp.len);
        check(memcmp(again.resp.data, whole.resp.data, whole.resp.len) == 0);
        read_free(&again);

    } else {
        check(whole.replies == 0);
    }

    read_free(&whole);
    free(in);

    ngx_http_auth_pat_redis_resp_drain();

    return 0;
}
