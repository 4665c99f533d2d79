/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Keeps the memory of the connections mod_vthread closes for the next
 * connections.
 *
 * The event MPM gives each connection a pool with an allocator of its own
 * and, when it closes the connection, recycles both. httpd 2.4 cannot take
 * a suspended connection back, so the pool of a connection mod_vthread
 * owned must be destroyed, and the MPM then maps fresh blocks for every
 * new connection: with Debian's mmap-backed APR allocator, 8 mmap and 8
 * munmap of 8 KiB per connection, each munmap a TLB shoot-down, and each
 * fresh page zero-filled on first touch. Under wrk with "Connection:
 * close" that was half of the children's CPU (docs/BENCHMARKS.md).
 *
 * So the closed connection's pool is destroyed with its allocator spared
 * (vtm_recycle_pool): the blocks go back on that allocator's free
 * list, and the allocator waits here as a donor. A new connection's
 * allocator gets blocks from a donor in pre_connection
 * (vtm_recycle_give), before the MPM allocates the request pool, the
 * read buffer and the output buffers; only the first two blocks (the
 * pool's own and the bucket allocator's, taken before any hook runs) are
 * still mapped per connection.
 *
 * A donor is never allocated from for its own use: blocks are taken from
 * it (apr_allocator_alloc) and given to the new allocator
 * (apr_allocator_free). APR does not tell how many blocks an allocator
 * holds; a connection leaves about VTM_RECYCLE_EXPECT, so each donor
 * carries that estimate, and a new connection takes VTM_RECYCLE_GIVE
 * from the newest donors: what one has left goes to the next connection.
 * (Unmapping those leftovers at once, on the reaper, took up to all of
 * both CPUs in the second half of a 10,000-connection burst, and the
 * carriers waited for the CPU.) Taking from a donor that is in fact empty
 * maps a fresh block: what the MPM would have done. A donor estimated
 * empty is left for the trim, which destroys it first; a donor that held
 * more than its estimate gives its rest back to the system then.
 *
 * Only allocators that belong to the connection's pool alone and have no
 * mutex are kept (event's); anything else goes to the reaper, as before.
 * As many donors wait as the child may have fibers (VThreadMaxFibers;
 * VTM_RECYCLE_MAX_UNLIMITED when that is unlimited), the most recent
 * (warmest) given first. A smaller cap made a burst's closes unmap: when
 * 10,000 connections that arrived together close together, event keeps
 * every pool, and so must this, or the closes cost 8 munmap each (30 %
 * of the children's CPU in a 10,000-connection burst). Kept memory was
 * resident in the live connections anyway, so keeping it raises no peak;
 * a donor kept for VTM_RECYCLE_AGE without being given is destroyed
 * by the reaper thread's periodic trim, so memory a burst left goes back
 * to the system.
 */

#include "vtm_glue.h"
#include "vtm_reaper.h"
#include "vtm_recycle.h"

#include <apr_allocator.h>
#include <apr_thread_mutex.h>

/** Donors kept at most, per child, when VThreadMaxFibers is unlimited. */
#define VTM_RECYCLE_MAX_UNLIMITED 65536
/** Donors destroyed per hold of the lock when trimming. */
#define VTM_RECYCLE_TRIM_BATCH 64
/** Blocks given to each new connection: what it maps after its pool's
 *  own two (request pool, read buffer, output buffers, notes). */
#define VTM_RECYCLE_GIVE 6
/** A block of the smallest size (index 1: 8 KiB with its header). */
#define VTM_RECYCLE_BLOCK (8192 - APR_MEMNODE_T_SIZE)
/** Blocks a closed connection's allocator holds, as a rule: its pool's
 *  two and the six it was given or mapped (strace, 50 connections). */
#define VTM_RECYCLE_EXPECT 8
/** A donor not given within this long is destroyed (trim). */
#define VTM_RECYCLE_AGE apr_time_from_sec(1)

typedef struct {
    apr_allocator_t *allocator;
    apr_time_t kept_at;     /* 0: estimated empty, destroyed first */
    int blocks;             /* estimated blocks left */
} vtm_donor_t;

static struct {
    apr_thread_mutex_t *lock;
    /* under lock: a ring, oldest at donors[oldest]; given from the
     * newest end, trimmed from the oldest */
    vtm_donor_t *donors;
    int capacity;
    int oldest;
    /* changed under lock, with atomic stores: vtm_recycle_give
     * reads it unlocked */
    int count;
    int running;                                    /* under lock */
    apr_uint64_t given;         /* under lock: connections given memory */
} vtm_recycle;

/* Under the lock. */
static void vtm_recycle_count_set(int n)
{
    __atomic_store_n(&vtm_recycle.count, n, __ATOMIC_RELAXED);
}

/* Under the lock: the i-th kept donor, 0 the oldest. */
static vtm_donor_t *vtm_recycle_donor(int i)
{
    return &vtm_recycle.donors[(vtm_recycle.oldest + i)
                                   % vtm_recycle.capacity];
}

/* Under the lock, with room: keep @a a as the newest donor. */
static void vtm_recycle_push_newest(apr_allocator_t *a, int blocks)
{
    vtm_donor_t *d = vtm_recycle_donor(vtm_recycle.count);

    d->allocator = a;
    d->kept_at = apr_time_now();
    d->blocks = blocks;
    vtm_recycle_count_set(vtm_recycle.count + 1);
}

/* pchild cleanup: the carriers and the MPM workers are gone. */
static apr_status_t vtm_recycle_exit(void *data)
{
    (void)data;
    apr_thread_mutex_lock(vtm_recycle.lock);
    vtm_recycle.running = 0;
    while (vtm_recycle.count > 0) {
        vtm_recycle_count_set(vtm_recycle.count - 1);
        apr_allocator_destroy(
            vtm_recycle_donor(vtm_recycle.count)->allocator);
    }
    apr_thread_mutex_unlock(vtm_recycle.lock);
    vtm_recycle.lock = NULL;    /* destroyed with pchild, next */
    return APR_SUCCESS;
}

apr_status_t vtm_recycle_child_init(apr_pool_t *pchild,
                                        apr_uint32_t max_fibers)
{
    apr_status_t rv;

    vtm_recycle_count_set(0);
    vtm_recycle.oldest = 0;
    vtm_recycle.given = 0;
    vtm_recycle.capacity = max_fibers ? (int)max_fibers
                                          : VTM_RECYCLE_MAX_UNLIMITED;
    /* Untouched pages until donors fill them. */
    vtm_recycle.donors = apr_palloc(
        pchild, (apr_size_t)vtm_recycle.capacity
                    * sizeof(vtm_donor_t));
    rv = apr_thread_mutex_create(&vtm_recycle.lock,
                                 APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    vtm_recycle.running = 1;
    apr_pool_cleanup_register(pchild, NULL, vtm_recycle_exit,
                              apr_pool_cleanup_null);
    return APR_SUCCESS;
}

/* An allocator that is the pool's alone: no other pool can still use its
 * blocks once the pool is gone, and no mutex of the pool's guards it. */
static apr_allocator_t *vtm_recycle_own_allocator(apr_pool_t *pool)
{
    apr_allocator_t *a = apr_pool_allocator_get(pool);

    if (!a || apr_allocator_owner_get(a) != pool
        || apr_allocator_mutex_get(a)) {
        return NULL;
    }
    return a;
}

void vtm_recycle_pool(apr_pool_t *pool)
{
    apr_allocator_t *a = vtm_recycle_own_allocator(pool);

    if (a && vtm_recycle.lock) {
        apr_thread_mutex_lock(vtm_recycle.lock);
        if (vtm_recycle.running
            && vtm_recycle.count < vtm_recycle.capacity) {
            /* Cleared already: destroying it only puts its blocks on the
             * allocator's free list (all of them: no maximum), no unmap. */
            apr_allocator_owner_set(a, NULL);
            apr_allocator_max_free_set(a, APR_ALLOCATOR_MAX_FREE_UNLIMITED);
            apr_pool_destroy(pool);
            vtm_recycle_push_newest(a, VTM_RECYCLE_EXPECT);
            apr_thread_mutex_unlock(vtm_recycle.lock);
            return;
        }
        apr_thread_mutex_unlock(vtm_recycle.lock);
    }
    vtm_reaper_destroy(pool);
}

/* A donor the store has no room for (or no more, the child exits): its
 * blocks are unmapped on the reaper thread, in its batches, not on this
 * MPM worker that is about to read a request. A pool that owns the
 * allocator carries it there; the pool takes one of the blocks. */
static void vtm_recycle_discard(apr_allocator_t *a)
{
    apr_pool_t *p;

    if (apr_pool_create_unmanaged_ex(&p, NULL, a) != APR_SUCCESS) {
        apr_allocator_destroy(a);
        return;
    }
    apr_allocator_owner_set(a, p);
    vtm_reaper_destroy(p);
}

/* Take the newest donor that has blocks left, if any. */
static int vtm_recycle_take(vtm_donor_t *out, int first)
{
    int found = 0;

    apr_thread_mutex_lock(vtm_recycle.lock);
    if (vtm_recycle.running && vtm_recycle.count > 0) {
        vtm_donor_t *d = vtm_recycle_donor(vtm_recycle.count - 1);

        if (d->blocks > 0) {
            *out = *d;
            vtm_recycle_count_set(vtm_recycle.count - 1);
            vtm_recycle.given += first;
            found = 1;
        }
    }
    apr_thread_mutex_unlock(vtm_recycle.lock);
    return found;
}

/* A donor back in the store: at the newest end if it has blocks left, at
 * the oldest end (for the next trim) if it is estimated empty. */
static void vtm_recycle_put_back(const vtm_donor_t *d)
{
    int kept = 0;

    apr_thread_mutex_lock(vtm_recycle.lock);
    if (vtm_recycle.running
        && vtm_recycle.count < vtm_recycle.capacity) {
        if (d->blocks > 0) {
            vtm_recycle_push_newest(d->allocator, d->blocks);
        }
        else {
            vtm_donor_t *oldest;

            vtm_recycle.oldest = (vtm_recycle.oldest
                                      + vtm_recycle.capacity - 1)
                                     % vtm_recycle.capacity;
            oldest = vtm_recycle_donor(0);
            oldest->allocator = d->allocator;
            oldest->kept_at = 0;
            oldest->blocks = 0;
            vtm_recycle_count_set(vtm_recycle.count + 1);
        }
        kept = 1;
    }
    apr_thread_mutex_unlock(vtm_recycle.lock);
    if (!kept) {
        vtm_recycle_discard(d->allocator);
    }
}

int vtm_recycle_give(conn_rec *c, void *csd)
{
    apr_allocator_t *to;
    apr_memnode_t *chain = NULL;
    vtm_donor_t d;
    int need = VTM_RECYCLE_GIVE;

    (void)csd;
    /* An unlocked look first: most servers keep nothing (no offloaded
     * location), and then a new connection costs no lock. */
    if (c->master || c->outgoing || !vtm_recycle.lock
        || !__atomic_load_n(&vtm_recycle.count, __ATOMIC_RELAXED)
        || !(to = vtm_recycle_own_allocator(c->pool))) {
        return DECLINED;
    }
    while (need > 0
           && vtm_recycle_take(&d, need == VTM_RECYCLE_GIVE)) {
        /* The donor is ours alone until put back: no lock needed. */
        while (need > 0 && d.blocks > 0) {
            apr_memnode_t *node = apr_allocator_alloc(d.allocator,
                                                      VTM_RECYCLE_BLOCK);
            if (!node) {
                d.blocks = 0;
                break;
            }
            node->next = chain;
            chain = node;
            need--;
            d.blocks--;
        }
        vtm_recycle_put_back(&d);
    }
    if (chain) {
        apr_allocator_free(to, chain);
    }
    return DECLINED;
}

void vtm_recycle_trim(void)
{
    apr_allocator_t *old[VTM_RECYCLE_TRIM_BATCH];
    apr_time_t cutoff = apr_time_now() - VTM_RECYCLE_AGE;
    int n, i;

    if (!vtm_recycle.lock) {
        return;
    }
    /* In batches: after a burst thousands may be due, and each destroy
     * unmaps, so new connections must not wait on the lock meanwhile. */
    do {
        n = 0;
        apr_thread_mutex_lock(vtm_recycle.lock);
        while (n < VTM_RECYCLE_TRIM_BATCH && n < vtm_recycle.count
               && vtm_recycle_donor(n)->kept_at < cutoff) {
            old[n] = vtm_recycle_donor(n)->allocator;
            n++;
        }
        if (n) {
            vtm_recycle.oldest = (vtm_recycle.oldest + n)
                                     % vtm_recycle.capacity;
            vtm_recycle_count_set(vtm_recycle.count - n);
        }
        apr_thread_mutex_unlock(vtm_recycle.lock);
        for (i = 0; i < n; i++) {
            apr_allocator_destroy(old[i]); /* the unmaps, outside the lock */
        }
    } while (n == VTM_RECYCLE_TRIM_BATCH);
}

void vtm_recycle_stats(int *kept, apr_uint64_t *given)
{
    *kept = 0;
    *given = 0;
    if (vtm_recycle.lock) {
        apr_thread_mutex_lock(vtm_recycle.lock);
        *kept = vtm_recycle.count;
        *given = vtm_recycle.given;
        apr_thread_mutex_unlock(vtm_recycle.lock);
    }
}
