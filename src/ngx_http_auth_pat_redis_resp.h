
/*
 * RESP replies: a hiredis reader (redisReaderFeed, redisReaderGetReply)
 * whose replies are redisReply objects of the module's allocator.
 */


#ifndef _NGX_HTTP_AUTH_PAT_REDIS_RESP_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_REDIS_RESP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>


/* a reader; NULL when out of memory; free it with redisReaderFree() */
redisReader *ngx_http_auth_pat_redis_resp_reader(void);

/* a reply of the reader, NULL or not */
void ngx_http_auth_pat_redis_resp_free(redisReply *r);

/* the recycled blocks, at exit */
void ngx_http_auth_pat_redis_resp_drain(void);


#endif /* _NGX_HTTP_AUTH_PAT_REDIS_RESP_H_INCLUDED_ */
