/* Transparent hooks for pthread mutexes and condition variables.
 *
 * On a fiber a contended pthread_mutex_lock, or a pthread_cond_wait,
 * must park the fiber, not its carrier: the holder of the mutex (or the
 * fiber that will signal) may be another fiber parked on the same carrier,
 * and blocking the thread would then never end (mod_proxy's connection
 * pool with more fibers than connections; its worker mutex held around a
 * lookup that parks).
 *
 * The pthread objects stay the real ones, shared with plain threads; the
 * fibers waiting for one queue in a parking lot keyed by its address
 * (a fixed table of buckets). The hooked unlock, signal and broadcast
 * make the real call, then wake the fibers queued on that address. A
 * release made outside the hooks (inside libc, or by an object that was
 * not patched) wakes nobody here: every park is therefore bounded by a
 * short recheck, after which the fiber tries again. For a mutex that
 * costs a late lock, never a lost one; for a condition variable it is a
 * spurious wakeup, which every caller must already accept. */
#include "vt_hook.h"
#include "vt_hook_calls.h"

#include "vt_clock.h"
#include "vt_wait.h"

#include <stdint.h>

/* How long a parked fiber waits before it tries again on its own. */
#define HOOK_LOCK_RECHECK apr_time_from_msec(2)
/* A condition park is a spurious wakeup when it times out: each one
 * costs the waiter a trylock and a new park. mod_proxy's pool with 96
 * fibers queued on 4 connections made 5,738 of them in 6 s at 50 ms; the
 * signals that matter come through the hooks anyway. */
#define HOOK_COND_RECHECK apr_time_from_msec(250)

#define HOOK_LOT_BUCKETS 256

typedef struct hook_lot_bucket_t {
    pthread_mutex_t lock;
    vt_waitq_t q;               /* fibers, keyed by waiter.data */
} __attribute__((aligned(64))) hook_lot_bucket_t;

static hook_lot_bucket_t hook_lot[HOOK_LOT_BUCKETS];
static pthread_once_t hook_lot_once = PTHREAD_ONCE_INIT;

/* Fibers queued in the lot: an unlock that finds 0 wakes nobody and
 * takes no lock (the common case by far). */
static _Atomic apr_size_t hook_lot_waiting;

static void hook_lot_init(void)
{
    for (int i = 0; i < HOOK_LOT_BUCKETS; i++) {
        pthread_mutex_init(&hook_lot[i].lock, NULL);
    }
}

static hook_lot_bucket_t *hook_lot_bucket(const void *key)
{
    uintptr_t h = ((uintptr_t)key >> 3) * 0x9E3779B97F4A7C15ull;
    return &hook_lot[h >> 56];
}

/* Wake the fibers queued on @a key: one, or all. Any thread. The bucket
 * lock is the runtime's own pthread mutex, called from this object, whose
 * slots are never patched. */
static void hook_lot_wake(const void *key, int all)
{
    hook_lot_bucket_t *b;
    vt_waiter_t *resume = NULL, *w, *next;

    /* On x86 the real unlock or signal before this was a full barrier (a
     * locked instruction), so a fiber that queued before it is seen here;
     * elsewhere the fence says so. */
#if !defined(__x86_64__) && !defined(__i386__)
    atomic_thread_fence(memory_order_seq_cst);
#endif
    if (atomic_load(&hook_lot_waiting) == 0) {
        return;
    }
    pthread_once(&hook_lot_once, hook_lot_init);
    b = hook_lot_bucket(key);
    pthread_mutex_lock(&b->lock);
    for (w = b->q.head; w; w = next) {
        next = w->next;
        if (w->data != key) {
            continue;
        }
        vt_waitq_unlink(&b->q, w);
        if (vt_waitq_claim(w, APR_SUCCESS)) {
            w->resume_next = resume;
            resume = w;
            if (!all) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    vt_wait_resume_list(resume);
}

/* Queue the calling fiber on @a key; then, queued, check
 * @a still_blocked (an unlock between the caller's first try and the
 * queueing would otherwise wake nobody) and skip the park if it says no;
 * run @a before_park (a condition variable releases its mutex there), and
 * park until woken or @a timeout. */
static apr_status_t hook_lot_park(const void *key,
                                  apr_interval_time_t timeout,
                                  int (*still_blocked)(void *), void *arg,
                                  void (*before_park)(void *),
                                  void *park_arg)
{
    hook_lot_bucket_t *b;
    vt_waiter_t w;
    apr_status_t rv = APR_SUCCESS;

    pthread_once(&hook_lot_once, hook_lot_init);
    b = hook_lot_bucket(key);
    vt_wait_init(&w);
    w.data = (void *)key;
    pthread_mutex_lock(&b->lock);
    vt_waitq_push(&b->q, &w);
    atomic_fetch_add(&hook_lot_waiting, 1);
    if (!still_blocked || still_blocked(arg)) {
        pthread_mutex_unlock(&b->lock);
        if (before_park) {
            before_park(park_arg);
        }
        rv = vt_wait_park(&w, VT_PARK_SYNC, timeout, VT_WAIT_UNCANCELLABLE);
        pthread_mutex_lock(&b->lock);
    }
    /* Not parked: only a waker holding the bucket lock could have
     * claimed it, and unlinked it is out of every waker's reach. */
    vt_waitq_unlink(&b->q, &w);
    atomic_fetch_sub(&hook_lot_waiting, 1);
    pthread_mutex_unlock(&b->lock);
    return rv;
}

/* ---- mutexes -------------------------------------------------------- */

typedef struct hook_trylock_t {
    pthread_mutex_t *m;
    int rv;
} hook_trylock_t;

/* Try once more, queued: an unlock between the first try and the queueing
 * would otherwise wake nobody. */
static int hook_mutex_still_busy(void *arg)
{
    hook_trylock_t *t = arg;
    t->rv = vt_hook_real.mutex_trylock(t->m);
    return t->rv == EBUSY;
}

/* Lock @a m on fiber @a f, parking while another holds it. */
static int hook_mutex_lock_fiber(vt_fiber_t *f, pthread_mutex_t *m)
{
    hook_trylock_t t = { m, vt_hook_real.mutex_trylock(m) };
    int saved = errno;
    int parked = 0;

    /* EBUSY is also what a non-recursive mutex this thread already holds
     * answers: another fiber on this carrier holds it, and it is that
     * fiber this one must wait for. */
    while (t.rv == EBUSY) {
        parked = 1;
        hook_lot_park(m, HOOK_LOCK_RECHECK, hook_mutex_still_busy, &t,
                      NULL, NULL);
        if (t.rv == EBUSY) {
            t.rv = vt_hook_real.mutex_trylock(m);
        }
    }
    vt_hook_count(f, VT_HOOK_MUTEX, parked);
    errno = saved;
    return t.rv;
}

int vt_hook_mutex_lock(pthread_mutex_t *m)
{
    vt_fiber_t *f = vt_hook_fiber();

    if (!f) {
        return vt_hook_real.mutex_lock(m);
    }
    return hook_mutex_lock_fiber(f, m);
}

int vt_hook_mutex_unlock(pthread_mutex_t *m)
{
    int rv = vt_hook_real.mutex_unlock(m);

    hook_lot_wake(m, 0);
    return rv;
}

/* ---- condition variables -------------------------------------------- */

static void hook_cond_release(void *m)
{
    vt_hook_mutex_unlock(m);
}

/* Microseconds from now to @a abstime on @a c's clock. glibc marks a
 * condition variable made with a monotonic clock attribute in bit 1 of
 * __wrefs (since 2.25). Bit 0 is "process-shared", not the clock: the
 * comment on __wrefs in glibc's nptl/pthread_cond_wait.c says so, and
 * glibc 2.36 sets 2 for setclock(CLOCK_MONOTONIC), 1 for setpshared
 * (check_vt_hook_lock tests both). APR and httpd use the default,
 * CLOCK_REALTIME. */
static apr_interval_time_t hook_cond_left(const pthread_cond_t *c,
                                          const struct timespec *abstime)
{
    clockid_t clock = CLOCK_REALTIME;
    struct timespec now;

#ifdef __GLIBC__
    if (c->__data.__wrefs & 2) {
        clock = CLOCK_MONOTONIC;
    }
#else
    (void)c;
#endif
    clock_gettime(clock, &now);
    /* A deadline decades away is as good as none (and would overflow). */
    if (abstime->tv_sec - now.tv_sec > 1000000000L) {
        return APR_INT64_C(1000000000) * APR_USEC_PER_SEC;
    }
    return (apr_interval_time_t)(abstime->tv_sec - now.tv_sec)
           * APR_USEC_PER_SEC + (abstime->tv_nsec - now.tv_nsec) / 1000;
}

/* Wait on @a c until signalled, @a abstime or a recheck (a spurious
 * wakeup), then retake @a m, as pthread_cond_timedwait does. */
static int hook_cond_wait_fiber(vt_fiber_t *f, pthread_cond_t *c,
                                pthread_mutex_t *m,
                                const struct timespec *abstime)
{
    apr_interval_time_t timeout = HOOK_COND_RECHECK;
    int saved = errno;
    int rv = 0;

    if (abstime) {
        apr_interval_time_t left;
        if (abstime->tv_nsec < 0 || abstime->tv_nsec >= 1000000000L) {
            return EINVAL;
        }
        left = hook_cond_left(c, abstime);
        if (left <= 0) {
            vt_hook_count(f, VT_HOOK_COND, 0);
            return ETIMEDOUT;
        }
        timeout = left < timeout ? left : timeout;
    }
    vt_hook_count(f, VT_HOOK_COND, 1);
    hook_lot_park(c, timeout, NULL, NULL, hook_cond_release, m);
    hook_mutex_lock_fiber(f, m);
    if (abstime && hook_cond_left(c, abstime) <= 0) {
        rv = ETIMEDOUT;
    }
    errno = saved;
    return rv;
}

int vt_hook_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    vt_fiber_t *f = vt_hook_fiber();

    if (!f) {
        return vt_hook_real.cond_wait(c, m);
    }
    return hook_cond_wait_fiber(f, c, m, NULL);
}

int vt_hook_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                           const struct timespec *abstime)
{
    vt_fiber_t *f = vt_hook_fiber();

    if (!f) {
        return vt_hook_real.cond_timedwait(c, m, abstime);
    }
    return hook_cond_wait_fiber(f, c, m, abstime);
}

/* Signal and broadcast wake the threads waiting in the real call and the
 * fibers in the lot alike; a signal may so wake one of each, which the
 * rules of condition variables allow (a spurious wakeup). */
int vt_hook_cond_signal(pthread_cond_t *c)
{
    int rv = vt_hook_real.cond_signal(c);

    hook_lot_wake(c, 0);
    return rv;
}

int vt_hook_cond_broadcast(pthread_cond_t *c)
{
    int rv = vt_hook_real.cond_broadcast(c);

    hook_lot_wake(c, 1);
    return rv;
}

void vt_hook_lock_atfork_child(void)
{
    /* The child has none of the parent's fibers: its unlocks and signals
     * must not look for them, nor take a bucket lock that another parent
     * thread may have held at the fork. */
    atomic_store(&hook_lot_waiting, 0);
}
