/* Parking a fiber or a thread, and joins: see vt_wait.h. */
#include "vt_wait.h"
#include "vt_carrier.h"
#include "vt_clock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

/* A plain thread's way to sleep until a waker resumes it. One per thread,
 * since a thread waits on one thing at a time. */
typedef struct vt_parker_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;          /* a resume was delivered and not yet consumed */
    int initialised;
} vt_parker_t;

static _Thread_local vt_parker_t tls_parker;

static vt_parker_t *parker_self(void)
{
    vt_parker_t *p = &tls_parker;
    if (!p->initialised) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&p->cond, &attr);
        pthread_condattr_destroy(&attr);
        pthread_mutex_init(&p->lock, NULL);
        p->initialised = 1;
    }
    return p;
}

void vt_wait_init(vt_waiter_t *w)
{
    atomic_init(&w->claimed, 0);
    w->result = APR_SUCCESS;
    w->fiber = vt_fiber_current();
    w->parker = w->fiber ? NULL : parker_self();
    w->prev = w->next = NULL;
    w->linked = 0;
    w->resume_next = NULL;
    w->data = NULL;
}

void vt_wait_resume(vt_waiter_t *w)
{
    if (w->fiber) {
        vt_carrier_schedule(w->fiber);
        return;
    }
    /* The parker is the thread's own and outlives this call; the waiter
     * may be gone as soon as the lock is released. */
    vt_parker_t *p = w->parker;
    pthread_mutex_lock(&p->lock);
    p->ready = 1;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void vt_wait_resume_list(vt_waiter_t *list)
{
    while (list) {
        vt_waiter_t *next = list->resume_next; /* read before resume */
        vt_wait_resume(list);
        list = next;
    }
}

/* ---- parking a fiber ------------------------------------------------ */

typedef struct fiber_park_t {
    vt_timer_t timer;
    vt_waiter_t *w;
} fiber_park_t;

static void park_timer_fired(vt_timer_t *t)
{
    fiber_park_t *fp = (fiber_park_t *)((char *)t - offsetof(fiber_park_t, timer));
    if (vt_waitq_claim(fp->w, APR_TIMEUP)) {
        vt_wait_resume(fp->w);
    }
}

void vt_wait_cancel_parked(vt_fiber_t *f)
{
    vt_waiter_t *w = f->wait;
    if (w && vt_waitq_claim(w, APR_ECONNABORTED)) {
        vt_wait_resume(w);
    }
}

static apr_status_t fiber_wait(vt_waiter_t *w, vt_fiber_park_e kind,
                               apr_interval_time_t timeout, int flags)
{
    vt_fiber_t *f = w->fiber;
    vt_carrier_t *c = f->carrier;
    fiber_park_t fp;
    int cancellable = !(flags & VT_WAIT_UNCANCELLABLE);

    /* Ending the wait ourselves is only allowed if we win the claim; if
     * a waker already won, it will schedule us, so we must park anyway. */
    if (cancellable && vt_fiber_is_cancelled(f)
        && vt_waitq_claim(w, APR_ECONNABORTED)) {
        return APR_ECONNABORTED;
    }
    if (timeout == 0 && vt_waitq_claim(w, APR_TIMEUP)) {
        return APR_TIMEUP;
    }
    /* Before parking (a cancel it causes is seen once we are parked). */
    vt_fiber_first_wait(f);
    fp.w = w;
    fp.timer.index = VT_TIMER_IDLE;
    fp.timer.fire = park_timer_fired;
    if (timeout > 0
        && vt_timer_add(&c->timers, &fp.timer, vt_clock_now() + timeout)
           != APR_SUCCESS
        && vt_waitq_claim(w, APR_ENOMEM)) {
        return APR_ENOMEM;
    }
    f->wait = cancellable ? w : NULL;
    f->state = VT_FIBER_PARKED;
    f->park_start = vt_clock_now();
    VT_COUNT_ADD(c->runnable, -1);
    VT_COUNT_ADD(c->parked[kind], 1);

    vt_fiber_switch_out(f);

    VT_COUNT_ADD(c->parked[kind], -1);
    f->parked_total += vt_clock_now() - f->park_start;
    f->wait = NULL;
    vt_timer_remove(&c->timers, &fp.timer);
    return w->result;
}

/* ---- parking a plain thread ----------------------------------------- */

static apr_status_t thread_wait(vt_waiter_t *w, apr_interval_time_t timeout)
{
    vt_parker_t *p = w->parker;
    struct timespec until;
    int timed = timeout >= 0;

    if (timed) {
        apr_time_t at;
        clock_gettime(CLOCK_MONOTONIC, &until);
        at = (apr_time_t)until.tv_sec * APR_USEC_PER_SEC
             + until.tv_nsec / 1000 + timeout;
        until.tv_sec = at / APR_USEC_PER_SEC;
        until.tv_nsec = (long)(at % APR_USEC_PER_SEC) * 1000;
    }
    pthread_mutex_lock(&p->lock);
    while (!p->ready) {
        if (!timed) {
            pthread_cond_wait(&p->cond, &p->lock);
            continue;
        }
        if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT
            && !p->ready) {
            if (vt_waitq_claim(w, APR_TIMEUP)) {
                pthread_mutex_unlock(&p->lock);
                return APR_TIMEUP;
            }
            /* A waker won just now: its resume is on the way. */
            timed = 0;
        }
    }
    p->ready = 0;
    pthread_mutex_unlock(&p->lock);
    return w->result;
}

apr_status_t vt_wait_park(vt_waiter_t *w, vt_fiber_park_e kind,
                            apr_interval_time_t timeout, int flags)
{
    if (w->fiber) {
        return fiber_wait(w, kind, timeout, flags);
    }
    if (timeout == 0 && vt_waitq_claim(w, APR_TIMEUP)) {
        return APR_TIMEUP;
    }
    return thread_wait(w, timeout);
}

apr_status_t vt_wait_queued(vt_waitq_t *q, pthread_mutex_t *lock,
                           vt_waiter_t *w, apr_interval_time_t timeout,
                           int flags, void (*before_park)(void *),
                           void *before_park_arg)
{
    apr_status_t rv;
    vt_waitq_push(q, w);
    pthread_mutex_unlock(lock);
    if (before_park) {
        before_park(before_park_arg);
    }
    rv = vt_wait_park(w, VT_PARK_SYNC, timeout, flags);
    pthread_mutex_lock(lock);
    vt_waitq_unlink(q, w);
    return rv;
}

/* ---- joins ---------------------------------------------------------- */

apr_status_t vt_wait_join(vt_fiber_t *f, apr_interval_time_t timeout,
                          apr_status_t *result)
{
    apr_status_t rv = APR_SUCCESS;
    if (!f) {
        return APR_EINVAL;
    }
    pthread_mutex_lock(&f->join_lock);
    if (!f->done) {
        vt_waiter_t w;
        vt_wait_init(&w);
        if (w.fiber == f) {
            pthread_mutex_unlock(&f->join_lock);
            return APR_EINVAL; /* joining itself would never return */
        }
        rv = vt_wait_queued(&f->joiners, &f->join_lock, &w, timeout, 0,
                            NULL, NULL);
        if (rv == APR_SUCCESS && !f->done) {
            rv = APR_EGENERAL; /* cannot happen: only the end wakes joiners */
        }
    }
    pthread_mutex_unlock(&f->join_lock);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (result) {
        *result = f->result;
    }
    vt_fiber_unref(f);
    return APR_SUCCESS;
}

void vt_wait_join_release(vt_fiber_t *f)
{
    vt_waiter_t *resume = NULL;

    pthread_mutex_lock(&f->join_lock);
    f->done = 1;
    vt_waitq_claim_all(&f->joiners, APR_SUCCESS, &resume);
    pthread_mutex_unlock(&f->join_lock);
    vt_wait_resume_list(resume);
}
