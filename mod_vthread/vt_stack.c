/* Fiber stacks: see vt_stack.h. */
#include "vt_stack.h"
#include "vt_annotate.h"
#include "vt_runtime.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

apr_size_t vt_page_size(void)
{
    static apr_size_t page;
    if (!page) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (apr_size_t)p : 4096;
    }
    return page;
}

apr_status_t vt_stack_size_round(apr_size_t requested, apr_size_t *out)
{
    apr_size_t page = vt_page_size();
    if (requested < VT_MIN_STACK_SIZE || requested > VT_MAX_STACK_SIZE) {
        return APR_EINVAL;
    }
    *out = (requested + page - 1) / page * page;
    return APR_SUCCESS;
}

void vt_stack_cache_init(vt_stack_cache_t *sc, apr_size_t size,
                         apr_uint32_t hot_max)
{
    memset(sc, 0, sizeof(*sc));
    sc->size = size;
    sc->guard = vt_page_size();
    sc->hot_max = hot_max;
}

/* The vt_stack_t lives in the top page of its own mapping: no allocation
 * besides the mmap, and it stays readable until the cache is destroyed. */
static apr_status_t stack_map(vt_stack_cache_t *sc, vt_stack_t **out)
{
    apr_size_t meta = vt_page_size();
    apr_size_t mapped = sc->guard + sc->size + meta;
    char *base = mmap(NULL, mapped, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                      -1, 0);
    if (base == MAP_FAILED) {
        return errno;
    }
    if (mprotect(base, sc->guard, PROT_NONE) != 0) {
        apr_status_t rv = errno;
        munmap(base, mapped);
        return rv;
    }
    vt_stack_t *st = (vt_stack_t *)(base + sc->guard + sc->size);
    st->base = base;
    st->mapped = mapped;
    st->lo = base + sc->guard;
    st->hi = base + sc->guard + sc->size;
    st->hot = 1;
    st->valgrind_id = vt_annotate_stack_register(st->lo, st->hi);
    st->all_next = sc->all;
    sc->all = st;
    sc->nall++;
    *out = st;
    return APR_SUCCESS;
}

apr_status_t vt_stack_get(vt_stack_cache_t *sc, vt_stack_t **st)
{
    if (sc->free) {
        vt_stack_t *s = sc->free;
        sc->free = s->next;
        sc->nfree--;
        if (s->hot) {
            sc->nhot--;
        }
        s->next = NULL;
        *st = s;
        return APR_SUCCESS;
    }
    return stack_map(sc, st);
}

void vt_stack_put(vt_stack_cache_t *sc, vt_stack_t *st)
{
    /* Most recent first: it is the one most likely still in cache. Once
     * more than hot_max are committed, the oldest hot one is cold anyway,
     * so give back the pages of the one being put instead: cheaper than
     * walking the list, and the count of hot stacks stays bounded. */
    if (st->hot && sc->nhot >= sc->hot_max) {
        madvise(st->lo, sc->size, MADV_DONTNEED);
        st->hot = 0;
    }
    if (st->hot) {
        sc->nhot++;
    }
    st->next = sc->free;
    sc->free = st;
    sc->nfree++;
}

apr_size_t vt_stack_cache_hot_bytes(const vt_stack_cache_t *sc)
{
    return (apr_size_t)sc->nhot * sc->size;
}

void vt_stack_cache_destroy(vt_stack_cache_t *sc)
{
    vt_stack_t *st = sc->all;
    while (st) {
        vt_stack_t *next = st->all_next;
        vt_annotate_stack_deregister(st->valgrind_id);
        munmap(st->base, st->mapped);
        st = next;
    }
    sc->all = NULL;
    sc->free = NULL;
    sc->nall = sc->nfree = sc->nhot = 0;
}

int vt_stack_in_guard(const vt_stack_t *st, const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    return a >= (uintptr_t)st->base && a < (uintptr_t)st->lo;
}
