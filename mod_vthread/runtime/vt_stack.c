/* Fiber stacks: see vt_stack.h. */
#include "vt_stack.h"
#include "vt_annotate.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

apr_size_t vt_stack_page_size(void)
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
    apr_size_t page = vt_stack_page_size();
    if (requested < VT_STACK_MIN_SIZE || requested > VT_STACK_MAX_SIZE) {
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
    sc->guard = vt_stack_page_size();
    sc->hot_max = hot_max;
    sc->cold_max = hot_max;
}

/* The vt_stack_t sits at the top of its own mapping, the stack just below
 * it: no allocation besides the mmap, and it stays readable until the
 * cache is destroyed. */
static apr_status_t stack_map(vt_stack_cache_t *sc, vt_stack_t **out)
{
    apr_size_t mapped = sc->guard + sc->size;
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
    uintptr_t top = (uintptr_t)(base + mapped) - sizeof(vt_stack_t);
    vt_stack_t *st = (vt_stack_t *)(top & ~(uintptr_t)63);
    st->base = base;
    st->mapped = mapped;
    st->lo = base + sc->guard;
    st->hi = (char *)st;
    st->hot = 1;
    st->valgrind_id = vt_annotate_stack_register(st->lo, st->hi);
    st->all_next = sc->all;
    st->all_prev = NULL;
    if (sc->all) {
        sc->all->all_prev = st;
    }
    sc->all = st;
    sc->nall++;
    *out = st;
    return APR_SUCCESS;
}

/* Take @a st off the free list (a get takes its head, an unmap its
 * tail). */
static void free_list_unlink(vt_stack_cache_t *sc, vt_stack_t *st)
{
    if (st->prev) {
        st->prev->next = st->next;
    }
    else {
        sc->free = st->next;
    }
    if (st->next) {
        st->next->prev = st->prev;
    }
    else {
        sc->free_tail = st->prev;
    }
    sc->nfree--;
}

/* The free list is most recent first, and its committed (hot) stacks are
 * a prefix of it ending at last_hot: a get takes the hottest, a trim gives
 * back the pages of the oldest hot ones. */
apr_status_t vt_stack_get(vt_stack_cache_t *sc, vt_stack_t **st)
{
    vt_stack_t *s = sc->free;
    if (!s) {
        return stack_map(sc, st);
    }
    free_list_unlink(sc, s);
    if (s->hot) {
        sc->nhot--;
        if (sc->last_hot == s) {
            sc->last_hot = NULL;
        }
    }
    s->next = s->prev = NULL;
    s->hot = 1; /* in use, its pages get committed again */
    *st = s;
    return APR_SUCCESS;
}

void vt_stack_put(vt_stack_cache_t *sc, vt_stack_t *st)
{
    st->hot = 1;
    st->prev = NULL;
    st->next = sc->free;
    if (sc->free) {
        sc->free->prev = st;
    }
    else {
        sc->free_tail = st;
    }
    sc->free = st;
    sc->nfree++;
    sc->nhot++;
    if (!sc->last_hot) {
        sc->last_hot = st;
    }
}

apr_uint32_t vt_stack_cache_trim(vt_stack_cache_t *sc)
{
    apr_size_t page = vt_stack_page_size();
    apr_uint32_t trimmed = 0;
    while (sc->nhot > sc->hot_max) {
        vt_stack_t *cold = sc->last_hot;
        /* Not the top page: it holds this header. */
        char *end = (char *)((uintptr_t)cold->hi & ~(uintptr_t)(page - 1));
        madvise(cold->lo, (size_t)(end - cold->lo), MADV_DONTNEED);
        cold->hot = 0;
        sc->nhot--;
        sc->last_hot = sc->nhot ? cold->prev : NULL;
        trimmed++;
    }
    return trimmed;
}

apr_uint32_t vt_stack_cache_cold_excess(const vt_stack_cache_t *sc)
{
    apr_uint32_t cold = sc->nfree - sc->nhot;
    return cold > sc->cold_max ? cold - sc->cold_max : 0;
}

/* Cold stacks are the suffix of the free list after last_hot, so the
 * tail is the oldest cold one. */
apr_uint32_t vt_stack_cache_unmap_cold(vt_stack_cache_t *sc,
                                       apr_uint32_t max)
{
    apr_uint32_t unmapped = 0;
    while (unmapped < max && vt_stack_cache_cold_excess(sc) > 0) {
        vt_stack_t *st = sc->free_tail;
        free_list_unlink(sc, st);
        if (st->all_prev) {
            st->all_prev->all_next = st->all_next;
        }
        else {
            sc->all = st->all_next;
        }
        if (st->all_next) {
            st->all_next->all_prev = st->all_prev;
        }
        sc->nall--;
        vt_annotate_stack_deregister(st->valgrind_id);
        vt_annotate_stack_unmapping(st->lo, (size_t)(st->hi - st->lo));
        munmap(st->base, st->mapped);   /* st lived there: gone now */
        unmapped++;
    }
    return unmapped;
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
    sc->free_tail = NULL;
    sc->last_hot = NULL;
    sc->nall = sc->nfree = sc->nhot = 0;
}

int vt_stack_in_guard(const vt_stack_t *st, const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    return a >= (uintptr_t)st->base && a < (uintptr_t)st->lo;
}
