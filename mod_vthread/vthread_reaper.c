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
 * spent about 1 ms per connection in it); here it delays nobody, and
 * pools that pile up are destroyed in batches.
 *
 * The teardown clears the pool first (the MPM's cleanups must run then),
 * so only the memory is left; the queue link lives in the pool itself.
 */
#include "vthread_glue.h"

#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <http_log.h>

APLOG_USE_MODULE(vthread);

typedef struct vthread_reap_t {
    apr_pool_t *pool;
    struct vthread_reap_t *next;
} vthread_reap_t;

static struct {
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *cond;
    apr_thread_t *thread;
    vthread_reap_t *head;   /* under lock */
    int stop;               /* under lock */
    int running;            /* set once at child_init */
} vthread_reaper;

static void *APR_THREAD_FUNC vthread_reaper_main(apr_thread_t *t, void *d)
{
    (void)t;
    (void)d;
    apr_thread_mutex_lock(vthread_reaper.lock);
    for (;;) {
        vthread_reap_t *batch;
        while (!vthread_reaper.head && !vthread_reaper.stop) {
            apr_thread_cond_wait(vthread_reaper.cond, vthread_reaper.lock);
        }
        batch = vthread_reaper.head;
        vthread_reaper.head = NULL;
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
    if (!vthread_reaper.running) {
        apr_pool_destroy(pool);
        return;
    }
    item = apr_palloc(pool, sizeof(*item));
    item->pool = pool;
    apr_thread_mutex_lock(vthread_reaper.lock);
    item->next = vthread_reaper.head;
    vthread_reaper.head = item;
    apr_thread_cond_signal(vthread_reaper.cond);
    apr_thread_mutex_unlock(vthread_reaper.lock);
}
