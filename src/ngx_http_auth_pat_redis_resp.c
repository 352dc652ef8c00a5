
/*
 * RESP replies: hiredis' reader (pure parsing, no I/O) building the
 * module's redisReply objects, one block each, small blocks recycled.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_redis_resp.h"


/*
 * hiredis' reader builds each reply with two or three malloc() calls per
 * element (the struct, then its string or element vector); an HMGET of
 * four fields is ten.  These functions build the same redisReply objects
 * in one block each, and keep freed blocks of the common small size on a
 * free list, so that a steady stream of lookups allocates nothing.
 * hiredis frees what the reader made through the same table.
 */

#define NGX_HTTP_AUTH_PAT_REPLY_BLOCK   128
#define NGX_HTTP_AUTH_PAT_REPLY_FREE    2048

/*
 * the largest reply the module asks for is the HGETALL of a list index:
 * 2 elements for each of at most 1,000,000 (auth_pat_max_tokens) + 10,000
 * tokens
 */
#define NGX_HTTP_AUTH_PAT_REPLY_ELEMENTS_MAX  (1 << 22)

/* the module's nested replies (ROLE, a script's) are small */
#define NGX_HTTP_AUTH_PAT_REPLY_NESTED_MAX    (1 << 16)


static void                            *ngx_http_auth_pat_reply_free;
static ngx_uint_t                       ngx_http_auth_pat_reply_nfree;


static size_t
ngx_http_auth_pat_reply_size(int type, size_t n)
{
    switch (type) {

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        return sizeof(redisReply) + n + 1;

    case REDIS_REPLY_ARRAY:
        return sizeof(redisReply) + n * sizeof(redisReply *);

    default:
        return sizeof(redisReply);
    }
}


static redisReply *
ngx_http_auth_pat_reply_alloc(const redisReadTask *task, int type, size_t n)
{
    size_t       size;
    redisReply  *r, *parent;

    size = ngx_http_auth_pat_reply_size(type, n);

    if (size <= NGX_HTTP_AUTH_PAT_REPLY_BLOCK
        && ngx_http_auth_pat_reply_free != NULL)
    {
        r = ngx_http_auth_pat_reply_free;
        ngx_http_auth_pat_reply_free = *(void **) r;
        ngx_http_auth_pat_reply_nfree--;

    } else {
        r = malloc(ngx_max(size, NGX_HTTP_AUTH_PAT_REPLY_BLOCK));
        if (r == NULL) {
            return NULL;
        }
    }

    ngx_memzero(r, sizeof(redisReply));
    r->type = type;

    if (task->parent != NULL) {
        parent = task->parent->obj;
        parent->element[task->idx] = r;
    }

    return r;
}


static void *
ngx_http_auth_pat_reply_string(const redisReadTask *task, char *str,
    size_t len)
{
    redisReply  *r;

    r = ngx_http_auth_pat_reply_alloc(task, task->type, len);
    if (r == NULL) {
        return NULL;
    }

    r->str = (char *) (r + 1);
    r->len = len;
    ngx_memcpy(r->str, str, len);
    r->str[len] = '\0';

    return r;
}


static void *
ngx_http_auth_pat_reply_array(const redisReadTask *task, int elements)
{
    redisReply  *r;

    /*
     * hiredis takes any count up to INT_MAX: "*2147483647" alone would
     * be 16 GB; the reader fails with "out of memory" instead
     */
    if (elements > (task->parent ? NGX_HTTP_AUTH_PAT_REPLY_NESTED_MAX
                                  : NGX_HTTP_AUTH_PAT_REPLY_ELEMENTS_MAX))
    {
        return NULL;
    }

    r = ngx_http_auth_pat_reply_alloc(task, REDIS_REPLY_ARRAY, elements);
    if (r == NULL) {
        return NULL;
    }

    r->elements = elements;

    if (elements > 0) {
        r->element = (redisReply **) (r + 1);
        ngx_memzero(r->element, elements * sizeof(redisReply *));
    }

    return r;
}


static void *
ngx_http_auth_pat_reply_integer(const redisReadTask *task, long long value)
{
    redisReply  *r;

    r = ngx_http_auth_pat_reply_alloc(task, REDIS_REPLY_INTEGER, 0);
    if (r == NULL) {
        return NULL;
    }

    r->integer = value;

    return r;
}


static void *
ngx_http_auth_pat_reply_nil(const redisReadTask *task)
{
    return ngx_http_auth_pat_reply_alloc(task, REDIS_REPLY_NIL, 0);
}


static void
ngx_http_auth_pat_reply_release(void *obj)
{
    size_t       i, size;
    redisReply  *r = obj;

    if (r == NULL) {
        return;
    }

    if (r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++) {
            ngx_http_auth_pat_reply_release(r->element[i]);
        }
    }

    size = ngx_http_auth_pat_reply_size(r->type,
                                        r->type == REDIS_REPLY_ARRAY
                                        ? r->elements : r->len);

    if (size <= NGX_HTTP_AUTH_PAT_REPLY_BLOCK
        && ngx_http_auth_pat_reply_nfree < NGX_HTTP_AUTH_PAT_REPLY_FREE)
    {
        *(void **) r = ngx_http_auth_pat_reply_free;
        ngx_http_auth_pat_reply_free = r;
        ngx_http_auth_pat_reply_nfree++;
        return;
    }

    free(r);
}


void
ngx_http_auth_pat_redis_resp_drain(void)
{
    void  *r;

    while (ngx_http_auth_pat_reply_free != NULL) {
        r = ngx_http_auth_pat_reply_free;
        ngx_http_auth_pat_reply_free = *(void **) r;
        free(r);
    }

    ngx_http_auth_pat_reply_nfree = 0;
}


static redisReplyObjectFunctions  ngx_http_auth_pat_reply_fns = {
    ngx_http_auth_pat_reply_string,
    ngx_http_auth_pat_reply_array,
    ngx_http_auth_pat_reply_integer,
    ngx_http_auth_pat_reply_nil,
    ngx_http_auth_pat_reply_release
};


redisReader *
ngx_http_auth_pat_redis_resp_reader(void)
{
    return redisReaderCreateWithFunctions(&ngx_http_auth_pat_reply_fns);
}


void
ngx_http_auth_pat_redis_resp_free(redisReply *r)
{
    ngx_http_auth_pat_reply_release(r);
}
