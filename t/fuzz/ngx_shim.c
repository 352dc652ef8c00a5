
/*
 * The nginx core symbols that src/core/ngx_string.c (linked into the
 * fuzz targets, from the pristine nginx 1.22.1 source) refers to, for
 * functions that the module's parsers never call: no cycle, no pools.
 * ngx_alloc() is real (ngx_sort() of large elements uses it).
 */


#include <ngx_config.h>
#include <ngx_core.h>


volatile ngx_cycle_t  *ngx_cycle;


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    /* the parsers allocate nothing from a pool */
    fprintf(stderr, "ngx_shim: ngx_pnalloc() called\n");
    abort();
}
