/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/*
 * Destroys the pools of connections mod_vthread closes, on a thread of
 * its own. The event MPM gives each connection a pool with its own
 * allocator and recycles it; httpd 2.4 offers no way to hand it back, so
 * mod_vthread destroys it, and with Debian's mmap-backed APR allocator
 * that is one munmap (a TLB shoot-down on every CPU) per block. Done on a
 * carrier it delayed every fiber there (the benchmark's 10,000 x 1 s run
 * spent about 1 ms per connection in it). On this thread it still costs
 * the carriers: each munmap takes the process's memory map lock (their
 * page faults wait) and interrupts their CPUs. Connections tend to close
 * in bursts (a wave of answers), so the reaper waits for the burst to
 * pass: it destroys what is pending once no pool came for
 * VTHREAD_REAP_QUIET, or once VTHREAD_REAP_MAX pools (up to 64 KiB each)
 * or VTHREAD_REAP_AGE of waiting have piled up.
 *
 * The teardown clears the pool first (the MPM's cleanups must run then),
 * so only the memory is left; the queue link lives in the pool itself.
 * Most pools do not come here: vthread_recycle.c keeps their memory for
 * the next connections, and only what it has no room for is destroyed
 * here. While idle, this thread also trims what it kept too long.
 */
#include "vthread_glue.h"
#include "vt_thread_name.h"

#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <http_log.h>

APLOG_USE_MODULE(vthread);

/** No new pool for this long: the burst is over. */
#define VTHREAD_REAP_QUIET apr_time_from_msec(50)
/** Destroy at once from this many pending pools. */
#define VTHREAD_REAP_MAX 256
/** The longest a pool waits, under a steady trickle of closes. */
#define VTHREAD_REAP_AGE apr_time_from_sec(1)
/** While idle, how often kept allocators are trimmed (vthread_recycle). */
#define VTHREAD_REAP_TRIM apr_time_from_msec(500)

typedef struct vthread_reap_t {
    apr_pool_t *pool;
    struct vthread_reap_t *next;
} vthread_reap_t;

static struct {
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *cond;
    apr_thread_t *thread;
    vthread_reap_t *head;   /* under lock */
    int pending;            /* under lock: pools in the list */
    apr_time_t first_at;    /* under lock: when the oldest came */
    apr_time_t last_at;     /* under lock: when the newest came */
    int stop;               /* under lock */
    int running;            /* set once at child_init */
} vthread_reaper;

/* Under the lock, with pools pending: wait until it is time to destroy
 * them (see the top of this file). */
static void vthread_reaper_settle(void)
{
    while (!vthread_reaper.stop
           && vthread_reaper.pending < VTHREAD_REAP_MAX) {
        apr_time_t now = apr_time_now();
        apr_time_t quiet = vthread_reaper.last_at + VTHREAD_REAP_QUIET;
        apr_time_t old = vthread_reaper.first_at + VTHREAD_REAP_AGE;
        apr_time_t until = quiet < old ? quiet : old;

        if (now >= until) {
            return;
        }
        apr_thread_cond_timedwait(vthread_reaper.cond, vthread_reaper.lock,
                                  until - now);
    }
}

static void *APR_THREAD_FUNC vthread_reaper_main(apr_thread_t *t, void *d)
{
    (void)t;
    (void)d;
    vt_thread_name("reaper", -1);
    apr_thread_mutex_lock(vthread_reaper.lock);
    for (;;) {
        vthread_reap_t *batch;
        while (!vthread_reaper.head && !vthread_reaper.stop) {
            /* Idle: also give back what vthread_recycle.c kept too long
             * (outside the lock: it unmaps), and wake event's listener if
             * it stopped accepting after the last worker or connection
             * mod_vthread freed (vthread_listener.c). */
            apr_thread_mutex_unlock(vthread_reaper.lock);
            vthread_recycle_trim();
            vthread_listener_nudge();
            apr_thread_mutex_lock(vthread_reaper.lock);
            if (!vthread_reaper.head && !vthread_reaper.stop) {
                apr_thread_cond_timedwait(vthread_reaper.cond,
                                          vthread_reaper.lock,
                                          VTHREAD_REAP_TRIM);
            }
        }
        vthread_reaper_settle();
        batch = vthread_reaper.head;
        vthread_reaper.head = NULL;
        vthread_reaper.pending = 0;
        if (!batch) {
            break;      /* stopping, and nothing left */
        }
        apr_thread_mutex_unlock(vthread_reaper.lock);
        while (batch) {
            vthread_reap_t *item = batch;
            batch = item->next;         /* read before the pool goes */
            apr_pool_destroy(item->pool);
        }
        apr_thread_mutex_lock(vthread_reaper.lock);
    }
    apr_thread_mutex_unlock(vthread_reaper.lock);
    return NULL;
}

/* A normal pchild cleanup: it runs after the pre-cleanup that stops the
 * runtime (so no teardown queues anything later) and before the lock and
 * condition, registered earlier, are destroyed. */
static apr_status_t vthread_reaper_exit(void *data)
{
    apr_status_t rv;
    (void)data;
    apr_thread_mutex_lock(vthread_reaper.lock);
    vthread_reaper.stop = 1;
    apr_thread_cond_signal(vthread_reaper.cond);
    apr_thread_mutex_unlock(vthread_reaper.lock);
    apr_thread_join(&rv, vthread_reaper.thread);
    vthread_reaper.running = 0;
    return APR_SUCCESS;
}

apr_status_t vthread_reaper_child_init(apr_pool_t *pchild)
{
    apr_status_t rv;
    vthread_reaper.head = NULL;
    vthread_reaper.pending = 0;
    vthread_reaper.stop = 0;
    if ((rv = apr_thread_mutex_create(&vthread_reaper.lock,
                                      APR_THREAD_MUTEX_DEFAULT, pchild))
            != APR_SUCCESS
        || (rv = apr_thread_cond_create(&vthread_reaper.cond, pchild))
            != APR_SUCCESS
        || (rv = apr_thread_create(&vthread_reaper.thread, NULL,
                                   vthread_reaper_main, NULL, pchild))
            != APR_SUCCESS) {
        return rv;
    }
    vthread_reaper.running = 1;
    apr_pool_cleanup_register(pchild, NULL, vthread_reaper_exit,
                              apr_pool_cleanup_null);
    return APR_SUCCESS;
}

void vthread_reaper_destroy(apr_pool_t *pool)
{
    vthread_reap_t *item;
    apr_time_t now;

    if (!vthread_reaper.running) {
        apr_pool_destroy(pool);
        return;
    }
    item = apr_palloc(pool, sizeof(*item));
    item->pool = pool;
    now = apr_time_now();
    apr_thread_mutex_lock(vthread_reaper.lock);
    item->next = vthread_reaper.head;
    if (!vthread_reaper.head) {
        vthread_reaper.first_at = now;
    }
    vthread_reaper.head = item;
    vthread_reaper.last_at = now;
    /* Wake the reaper to start its clock, or to destroy a full list. */
    if (++vthread_reaper.pending == 1
        || vthread_reaper.pending == VTHREAD_REAP_MAX) {
        apr_thread_cond_signal(vthread_reaper.cond);
    }
    apr_thread_mutex_unlock(vthread_reaper.lock);
}
