/* Events, mutexes and condition variables that park fibers and block
 * plain threads alike: a pthread mutex guards each object's state for a few
 * instructions; waiting happens on a vt_waitq_t outside it. */
#include "vt_wait.h"

#include <apr_pools.h>
#include "vthread.h"

struct vthread_event_t {
    pthread_mutex_t lock;
    vt_waitq_t waiters;
    int pending;        /* a signal nobody was waiting for */
};

struct vthread_mutex_t {
    pthread_mutex_t lock;
    vt_waitq_t waiters;
    int held;
};

struct vthread_cond_t {
    pthread_mutex_t lock;
    vt_waitq_t waiters;
};

static apr_status_t lock_cleanup(void *data)
{
    pthread_mutex_destroy(data);
    return APR_SUCCESS;
}

/* Each object starts with its pthread mutex, destroyed with the pool. */
static void *sync_alloc(apr_pool_t *p, apr_size_t size)
{
    pthread_mutex_t *lock = apr_pcalloc(p, size);
    if (lock) {
        pthread_mutex_init(lock, NULL);
        apr_pool_cleanup_register(p, lock, lock_cleanup,
                                  apr_pool_cleanup_null);
    }
    return lock;
}

apr_status_t vthread_event_create(vthread_event_t **ev, apr_pool_t *p)
{
    *ev = sync_alloc(p, sizeof(**ev));
    return *ev ? APR_SUCCESS : APR_ENOMEM;
}

apr_status_t vthread_event_wait(vthread_event_t *ev,
                                apr_interval_time_t timeout)
{
    apr_status_t rv = APR_SUCCESS;
    pthread_mutex_lock(&ev->lock);
    if (ev->pending) {
        ev->pending = 0;
    }
    else {
        vt_waiter_t w;
        vt_wait_init(&w);
        rv = vt_wait_queued(&ev->waiters, &ev->lock, &w, timeout, 0,
                           NULL, NULL);
    }
    pthread_mutex_unlock(&ev->lock);
    return rv;
}

void vthread_event_signal(vthread_event_t *ev)
{
    vt_waiter_t *resume = NULL;
    pthread_mutex_lock(&ev->lock);
    if (!vt_waitq_claim_first(&ev->waiters, APR_SUCCESS, &resume)) {
        ev->pending = 1;
    }
    pthread_mutex_unlock(&ev->lock);
    vt_wait_resume_list(resume);
}

apr_size_t vthread_event_broadcast(vthread_event_t *ev)
{
    vt_waiter_t *resume = NULL;
    apr_size_t n;
    pthread_mutex_lock(&ev->lock);
    n = vt_waitq_claim_all(&ev->waiters, APR_SUCCESS, &resume);
    pthread_mutex_unlock(&ev->lock);
    vt_wait_resume_list(resume);
    return n;
}

apr_status_t vthread_mutex_create(vthread_mutex_t **m, apr_pool_t *p)
{
    *m = sync_alloc(p, sizeof(**m));
    return *m ? APR_SUCCESS : APR_ENOMEM;
}

/* Ownership passes straight to the first waiter on unlock (held stays
 * set), so a fiber that keeps relocking cannot starve the queue.
 *
 * Not interrupted by cancellation: a lock guards a short section, and a
 * cancelled fiber often needs one to clean up shared state. Failing here
 * would push callers into retry loops that spin on their carrier. */
apr_status_t vthread_mutex_lock(vthread_mutex_t *m)
{
    apr_status_t rv = APR_SUCCESS;
    pthread_mutex_lock(&m->lock);
    if (!m->held) {
        m->held = 1;
    }
    else {
        vt_waiter_t w;
        vt_wait_init(&w);
        rv = vt_wait_queued(&m->waiters, &m->lock, &w, -1,
                           VT_WAIT_UNCANCELLABLE, NULL, NULL);
    }
    pthread_mutex_unlock(&m->lock);
    return rv;
}

apr_status_t vthread_mutex_trylock(vthread_mutex_t *m)
{
    apr_status_t rv = APR_SUCCESS;
    pthread_mutex_lock(&m->lock);
    if (m->held) {
        rv = APR_EBUSY;
    }
    else {
        m->held = 1;
    }
    pthread_mutex_unlock(&m->lock);
    return rv;
}

apr_status_t vthread_mutex_unlock(vthread_mutex_t *m)
{
    vt_waiter_t *resume = NULL;
    pthread_mutex_lock(&m->lock);
    if (!vt_waitq_claim_first(&m->waiters, APR_SUCCESS, &resume)) {
        m->held = 0;
    }
    pthread_mutex_unlock(&m->lock);
    vt_wait_resume_list(resume);
    return APR_SUCCESS;
}

apr_status_t vthread_cond_create(vthread_cond_t **c, apr_pool_t *p)
{
    *c = sync_alloc(p, sizeof(**c));
    return *c ? APR_SUCCESS : APR_ENOMEM;
}

static void unlock_user_mutex(void *m)
{
    vthread_mutex_unlock(m);
}

apr_status_t vthread_cond_wait(vthread_cond_t *c, vthread_mutex_t *m,
                               apr_interval_time_t timeout)
{
    vt_waiter_t w;
    apr_status_t rv;
    vt_wait_init(&w);
    /* Queued before the user's mutex is released: a signal sent by the
     * next holder cannot be missed. */
    pthread_mutex_lock(&c->lock);
    rv = vt_wait_queued(&c->waiters, &c->lock, &w, timeout, 0,
                       unlock_user_mutex, m);
    pthread_mutex_unlock(&c->lock);
    /* The caller holds @a m again whatever happened, even if cancelled. */
    vthread_mutex_lock(m);
    return rv;
}

void vthread_cond_signal(vthread_cond_t *c)
{
    vt_waiter_t *resume = NULL;
    pthread_mutex_lock(&c->lock);
    vt_waitq_claim_first(&c->waiters, APR_SUCCESS, &resume);
    pthread_mutex_unlock(&c->lock);
    vt_wait_resume_list(resume);
}

void vthread_cond_broadcast(vthread_cond_t *c)
{
    vt_waiter_t *resume = NULL;
    pthread_mutex_lock(&c->lock);
    vt_waitq_claim_all(&c->waiters, APR_SUCCESS, &resume);
    pthread_mutex_unlock(&c->lock);
    vt_wait_resume_list(resume);
}
