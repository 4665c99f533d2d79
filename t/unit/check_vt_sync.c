/* Unit tests for vt_sync.c: the event count (a signal is kept for the next
 * wait, a broadcast wakes only current waiters), wake-ups across carriers
 * and from plain threads, a broadcast to 10,000 fibers from a plain thread,
 * the mutex under contention from fibers on two carriers and plain threads,
 * FIFO hand-over, trylock, cancellation, and the condition variable.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) uses 1,000
 * waiters instead of 10,000 and fewer lock rounds. */
#include "vt_test_util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Event: signal kept, broadcast not kept. Same checks on and off a fiber. */

typedef struct {
    vthread_event_t *ev;
    apr_status_t r[6];
    apr_size_t woken;
} kept_t;

static apr_status_t event_kept_checks(void *arg)
{
    kept_t *k = arg;
    /* one signal with nobody waiting is kept for the next wait */
    vthread_event_signal(k->ev);
    k->r[0] = vthread_event_wait(k->ev, 0);
    k->r[1] = vthread_event_wait(k->ev, 0);
    /* two signals keep one, not two */
    vthread_event_signal(k->ev);
    vthread_event_signal(k->ev);
    k->r[2] = vthread_event_wait(k->ev, VT_MS(10));
    k->r[3] = vthread_event_wait(k->ev, VT_MS(10));
    /* a broadcast with nobody waiting wakes none and is not kept */
    k->woken = vthread_event_broadcast(k->ev);
    k->r[4] = vthread_event_wait(k->ev, VT_MS(10));
    /* the kept signal is consumed by a wait with a timeout too */
    vthread_event_signal(k->ev);
    k->r[5] = vthread_event_wait(k->ev, apr_time_from_sec(10));
    return APR_SUCCESS;
}

static void check_kept(const kept_t *k)
{
    ck_assert_int_eq(k->r[0], APR_SUCCESS);
    ck_assert_int_eq(k->r[1], APR_TIMEUP);
    ck_assert_int_eq(k->r[2], APR_SUCCESS);
    ck_assert_int_eq(k->r[3], APR_TIMEUP);
    ck_assert_uint_eq(k->woken, 0);
    ck_assert_int_eq(k->r[4], APR_TIMEUP);
    ck_assert_int_eq(k->r[5], APR_SUCCESS);
}

START_TEST(test_event_kept_on_fiber)
{
    vt_test_rt_t t;
    kept_t k;
    memset(&k, 0, sizeof(k));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&k.ev, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, event_kept_checks, &k), APR_SUCCESS);
    check_kept(&k);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_event_kept_off_fiber)
{
    vt_test_rt_t t;
    kept_t k;
    memset(&k, 0, sizeof(k));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&k.ev, t.pool), APR_SUCCESS);
    event_kept_checks(&k);
    check_kept(&k);
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    vthread_event_t *ev;
    apr_interval_time_t timeout;
    apr_status_t rv;
    apr_interval_time_t took;
} ewait_t;

static apr_status_t fn_event_wait(void *arg)
{
    ewait_t *w = arg;
    apr_time_t t0 = apr_time_now();
    w->rv = vthread_event_wait(w->ev, w->timeout);
    w->took = vt_test_elapsed(t0);
    return APR_SUCCESS;
}

START_TEST(test_event_wait_timeout)
{
    vt_test_rt_t t;
    ewait_t w;
    memset(&w, 0, sizeof(w));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&w.ev, t.pool), APR_SUCCESS);
    w.timeout = VT_MS(50);
    ck_assert_int_eq(vt_test_run(&t, fn_event_wait, &w), APR_SUCCESS);
    ck_assert_int_eq(w.rv, APR_TIMEUP);
    ck_assert_int_ge(w.took, VT_MS(50));
    ck_assert_int_lt(w.took, VT_MS(50) + vt_test_soon());
    /* a timed-out waiter is no longer a waiter */
    ck_assert_uint_eq(vthread_event_broadcast(w.ev), 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* Waiters on both carriers: one signal wakes exactly one; a broadcast
 * wakes the rest and reports how many. */
START_TEST(test_event_signal_one_broadcast_rest)
{
    enum { N = 6 };
    vt_test_rt_t t;
    ewait_t w[N];
    vt_fiber_t *f[N];
    vthread_event_t *ev;
    int done;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&ev, t.pool), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        w[i].ev = ev;
        w[i].timeout = apr_time_from_sec(20);
        w[i].rv = -1;
        f[i] = vt_test_go(&t, fn_event_wait, &w[i], "event-waiter");
    }
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, N));
    vthread_event_signal(ev);
    apr_sleep(VT_MS(100));
    done = 0;
    for (int i = 0; i < N; i++) {
        done += w[i].rv == APR_SUCCESS;
    }
    ck_assert_int_eq(done, 1);
    ck_assert_uint_eq(vthread_event_broadcast(ev), N - 1);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
        ck_assert_int_eq(w[i].rv, APR_SUCCESS);
        ck_assert_int_lt(w[i].took, apr_time_from_sec(10));
    }
    /* nothing left over for a later wait */
    ck_assert_int_eq(vthread_event_wait(ev, 0), APR_TIMEUP);
    vt_test_rt_stop(&t);
}
END_TEST

/* A fiber on one carrier wakes a fiber parked on the other. */
typedef struct {
    vthread_event_t *ev;
    vt_runtime_t *rt;
    int carrier;
} signaller_t;

static int sync_parked(void *arg)
{
    vt_carrier_stats_t s;
    vt_test_stats_sum(((signaller_t *)arg)->rt, &s);
    return s.parked_sync >= 1;
}

static apr_status_t fn_signaller(void *arg)
{
    signaller_t *s = arg;
    s->carrier = vt_fiber_carrier_index(vt_fiber_current());
    /* wait (parking, so this carrier stays free) for the waiter to park */
    for (int i = 0; i < 5000 && !sync_parked(s); i++) {
        vthread_sleep(1000);
    }
    vthread_event_signal(s->ev);
    return APR_SUCCESS;
}

START_TEST(test_event_cross_carrier)
{
    vt_test_rt_t t;
    ewait_t w;
    signaller_t s;
    vt_fiber_t *fw, *fs;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&w.ev, t.pool), APR_SUCCESS);
    w.timeout = apr_time_from_sec(20);
    w.rv = -1;
    s.ev = w.ev;
    s.rt = t.rt;
    fw = vt_test_go(&t, fn_event_wait, &w, "waiter");
    fs = vt_test_go(&t, fn_signaller, &s, "signaller");
    /* the least loaded carrier got the second fiber */
    ck_assert_int_ne(vt_fiber_carrier_index(fw), vt_fiber_carrier_index(fs));
    ck_assert_int_eq(vt_test_join(fs), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fw), APR_SUCCESS);
    ck_assert_int_eq(w.rv, APR_SUCCESS);
    ck_assert_int_lt(w.took, apr_time_from_sec(10));
    vt_test_rt_stop(&t);
}
END_TEST

/* A plain thread wakes a fiber; a fiber wakes a plain thread. */
typedef struct {
    vthread_event_t *ev;
    apr_interval_time_t delay;
} later_t;

static void *signal_later(void *arg)
{
    later_t *l = arg;
    apr_sleep(l->delay);
    vthread_event_signal(l->ev);
    return NULL;
}

static apr_status_t fn_signal_later(void *arg)
{
    later_t *l = arg;
    vthread_sleep(l->delay);
    vthread_event_signal(l->ev);
    return APR_SUCCESS;
}

START_TEST(test_event_plain_thread)
{
    vt_test_rt_t t;
    ewait_t w;
    later_t l;
    apr_thread_t *th;
    vt_fiber_t *f;
    apr_time_t t0;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&w.ev, t.pool), APR_SUCCESS);

    /* thread -> fiber */
    w.timeout = apr_time_from_sec(20);
    w.rv = -1;
    l.ev = w.ev;
    l.delay = VT_MS(50);
    f = vt_test_go(&t, fn_event_wait, &w, "waits-for-thread");
    th = vt_test_thread(t.pool, signal_later, &l);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    vt_test_thread_join(th);
    ck_assert_int_eq(w.rv, APR_SUCCESS);
    ck_assert_int_ge(w.took, VT_MS(40));
    ck_assert_int_lt(w.took, apr_time_from_sec(10));

    /* fiber -> test thread (which blocks in the wait) */
    f = vt_test_go(&t, fn_signal_later, &l, "signals-thread");
    t0 = apr_time_now();
    ck_assert_int_eq(vthread_event_wait(w.ev, apr_time_from_sec(20)),
                     APR_SUCCESS);
    ck_assert_int_ge(vt_test_elapsed(t0), VT_MS(40));
    ck_assert_int_lt(vt_test_elapsed(t0), apr_time_from_sec(10));
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);

    /* off a fiber, a timeout is a timeout */
    t0 = apr_time_now();
    ck_assert_int_eq(vthread_event_wait(w.ev, VT_MS(30)), APR_TIMEUP);
    ck_assert_int_ge(vt_test_elapsed(t0), VT_MS(29));
    vt_test_rt_stop(&t);
}
END_TEST

/* 10,000 fibers wait; a plain thread broadcasts once. */
START_TEST(test_broadcast_many_from_thread)
{
    const int n = VT_N(10000, 1000);
    vt_test_rt_t t;
    ewait_t *w = calloc((size_t)n, sizeof(*w));
    vt_fiber_t **f = calloc((size_t)n, sizeof(*f));
    vthread_event_t *ev;
    apr_size_t woken;
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(f);
    vt_test_config(&t, 2);
    t.cfg.stack_size = 64 * 1024;
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vthread_event_create(&ev, t.pool), APR_SUCCESS);
    for (int i = 0; i < n; i++) {
        w[i].ev = ev;
        w[i].timeout = -1;
        w[i].rv = -1;
        f[i] = vt_test_go(&t, fn_event_wait, &w[i], "long-poll");
    }
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, (apr_uint32_t)n));
    woken = vthread_event_broadcast(ev);
    ck_assert_uint_eq(woken, (apr_size_t)n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
        ck_assert_int_eq(w[i].rv, APR_SUCCESS);
    }
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);
    vt_test_rt_stop(&t);
    free(f);
    free(w);
}
END_TEST

START_TEST(test_event_cancel)
{
    vt_test_rt_t t;
    ewait_t w;
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_event_create(&w.ev, t.pool), APR_SUCCESS);
    w.timeout = -1;
    w.rv = -1;
    f = vt_test_go(&t, fn_event_wait, &w, "cancelled-waiter");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(w.rv, APR_ECONNABORTED);
    /* the cancelled waiter left the event: a signal is kept, not lost */
    vthread_event_signal(w.ev);
    ck_assert_int_eq(vthread_event_wait(w.ev, 0), APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Mutex. */

typedef struct {
    vthread_mutex_t *m;
    long counter;           /* protected by m, deliberately not atomic */
    _Atomic int inside;
    _Atomic int overlap;
    int rounds;
} counter_t;

static void count_once(counter_t *c, int on_fiber)
{
    long v;
    if (atomic_fetch_add(&c->inside, 1) != 0) {
        atomic_fetch_add(&c->overlap, 1);
    }
    v = c->counter;
    /* hold the lock across a switch so others must park on it */
    if (on_fiber) {
        vthread_yield();
    }
    c->counter = v + 1;
    atomic_fetch_sub(&c->inside, 1);
}

static apr_status_t fn_count(void *arg)
{
    counter_t *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        if (!VT_CHECK(vthread_mutex_lock(c->m) == APR_SUCCESS)) {
            return APR_EGENERAL;
        }
        count_once(c, 1);
        VT_CHECK(vthread_mutex_unlock(c->m) == APR_SUCCESS);
        if (i % 4 == 0) {
            vthread_yield();
        }
    }
    return APR_SUCCESS;
}

static void *thread_count(void *arg)
{
    counter_t *c = arg;
    for (int i = 0; i < c->rounds; i++) {
        if (!VT_CHECK(vthread_mutex_lock(c->m) == APR_SUCCESS)) {
            return NULL;
        }
        count_once(c, 0);
        VT_CHECK(vthread_mutex_unlock(c->m) == APR_SUCCESS);
    }
    return NULL;
}

START_TEST(test_mutex_counter)
{
    const int fibers = VT_N(100, 20), threads = 2;
    vt_test_rt_t t;
    counter_t c;
    vt_fiber_t **f = calloc((size_t)fibers, sizeof(*f));
    apr_thread_t *th[2];
    int carrier_used[2] = { 0, 0 };
    ck_assert_ptr_nonnull(f);
    memset(&c, 0, sizeof(c));
    c.rounds = VT_N(200, 30);
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&c.m, t.pool), APR_SUCCESS);
    /* All created before any starts: a created fiber counts toward its
     * carrier's load, so placement spreads them even where each would end
     * before the next is created (ASan, valgrind). */
    for (int i = 0; i < fibers; i++) {
        ck_assert_int_eq(vt_spawn_create(&f[i], t.rt, fn_count, &c,
                                         "counter"), APR_SUCCESS);
        carrier_used[vt_fiber_carrier_index(f[i])] = 1;
    }
    for (int i = 0; i < fibers; i++) {
        vt_spawn_start(f[i]);
    }
    for (int i = 0; i < threads; i++) {
        th[i] = vt_test_thread(t.pool, thread_count, &c);
    }
    for (int i = 0; i < threads; i++) {
        vt_test_thread_join(th[i]);
    }
    for (int i = 0; i < fibers; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
    }
    ck_assert(carrier_used[0] && carrier_used[1]);
    ck_assert_int_eq(atomic_load(&c.overlap), 0);
    ck_assert_int_eq(c.counter, (long)(fibers + threads) * c.rounds);
    vt_test_rt_stop(&t);
    free(f);
}
END_TEST

/* trylock from a fiber (another holder than the test thread); unlocks
 * again if it got the mutex. */
static apr_status_t fn_trylock(void *arg)
{
    vthread_mutex_t *m = arg;
    apr_status_t rv = vthread_mutex_trylock(m);
    if (rv == APR_SUCCESS) {
        vthread_mutex_unlock(m);
    }
    return rv;
}

START_TEST(test_mutex_trylock)
{
    vt_test_rt_t t;
    vthread_mutex_t *m;
    apr_status_t rv;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&m, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_trylock, m), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_trylock(m), APR_SUCCESS);
    /* held by the test thread: a fiber's trylock fails */
    rv = vt_test_run(&t, fn_trylock, m);
    ck_assert_msg(APR_STATUS_IS_EBUSY(rv), "trylock returned %d", rv);
    ck_assert_int_eq(vthread_mutex_unlock(m), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_trylock, m), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_lock(m), APR_SUCCESS);
    rv = vt_test_run(&t, fn_trylock, m);
    ck_assert_msg(APR_STATUS_IS_EBUSY(rv), "trylock returned %d", rv);
    ck_assert_int_eq(vthread_mutex_unlock(m), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_trylock, m), APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

/* Waiters get the mutex in the order they started waiting. */
typedef struct {
    vthread_mutex_t *m;
    _Atomic int next;
    int order[4];
    int id;
} fifo_t;

typedef struct {
    fifo_t *x;
    int id;
    apr_status_t rv;
} fifo_arg_t;

static apr_status_t fn_fifo_locker(void *arg)
{
    fifo_arg_t *a = arg;
    a->rv = vthread_mutex_lock(a->x->m);
    if (a->rv == APR_SUCCESS) {
        int at = atomic_fetch_add(&a->x->next, 1);
        if (at < 4) {
            a->x->order[at] = a->id;
        }
        vthread_mutex_unlock(a->x->m);
    }
    return APR_SUCCESS;
}

START_TEST(test_mutex_fifo)
{
    vt_test_rt_t t;
    fifo_t x;
    fifo_arg_t a[4];
    vt_fiber_t *f[4];
    memset(&x, 0, sizeof(x));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&x.m, t.pool), APR_SUCCESS);
    /* the test thread holds it; fibers queue one by one */
    ck_assert_int_eq(vthread_mutex_lock(x.m), APR_SUCCESS);
    for (int i = 0; i < 4; i++) {
        a[i].x = &x;
        a[i].id = i;
        a[i].rv = -1;
        f[i] = vt_test_go(&t, fn_fifo_locker, &a[i], "fifo");
        ck_assert(vt_test_wait_parked(t.rt, 0, 0, (apr_uint32_t)i + 1));
    }
    ck_assert_int_eq(vthread_mutex_unlock(x.m), APR_SUCCESS);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
        ck_assert_int_eq(a[i].rv, APR_SUCCESS);
    }
    ck_assert_int_eq(atomic_load(&x.next), 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(x.order[i], i);
    }
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_mutex_cancel_waiter)
{
    vt_test_rt_t t;
    fifo_t x;
    fifo_arg_t a;
    vt_fiber_t *f;
    memset(&x, 0, sizeof(x));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&x.m, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_lock(x.m), APR_SUCCESS);
    a.x = &x;
    a.id = 0;
    a.rv = -1;
    f = vt_test_go(&t, fn_fifo_locker, &a, "cancelled-locker");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    /* cancellation does not interrupt a lock wait (vthread.h): the fiber
     * stays parked until the holder unlocks, then gets the mutex */
    vt_spawn_cancel(f);
    apr_sleep(apr_time_from_msec(50));
    ck_assert_int_eq(a.rv, -1);
    ck_assert(APR_STATUS_IS_EBUSY(vt_test_run(&t, fn_trylock, x.m)));
    ck_assert_int_eq(vthread_mutex_unlock(x.m), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(a.rv, APR_SUCCESS);
    ck_assert_int_eq(atomic_load(&x.next), 1);
    /* and it unlocked it */
    ck_assert_int_eq(vt_test_run(&t, fn_trylock, x.m), APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Condition variable. */

typedef struct {
    vthread_mutex_t *m;
    vthread_cond_t *c;
    int ready;              /* protected by m */
    apr_interval_time_t timeout;
    apr_status_t rv;
    apr_interval_time_t took;
    int held_after;         /* trylock by another failed while we held it */
    _Atomic int returned;
    _Atomic int release;
} cv_t;

static apr_status_t fn_cond_timeout(void *arg)
{
    cv_t *x = arg;
    apr_time_t t0;
    if (!VT_CHECK(vthread_mutex_lock(x->m) == APR_SUCCESS)) {
        return APR_EGENERAL;
    }
    t0 = apr_time_now();
    x->rv = vthread_cond_wait(x->c, x->m, x->timeout);
    x->took = vt_test_elapsed(t0);
    /* the mutex is ours again whatever the result: keep it until told */
    atomic_store(&x->returned, 1);
    while (!atomic_load(&x->release)) {
        vthread_sleep(1000);
    }
    vthread_mutex_unlock(x->m);
    return APR_SUCCESS;
}

static int cv_returned(void *arg)
{
    return atomic_load(&((cv_t *)arg)->returned);
}

START_TEST(test_cond_wait_timeout)
{
    vt_test_rt_t t;
    cv_t x;
    vt_fiber_t *f;
    memset(&x, 0, sizeof(x));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&x.m, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_cond_create(&x.c, t.pool), APR_SUCCESS);
    x.timeout = VT_MS(50);
    f = vt_test_go(&t, fn_cond_timeout, &x, "cond-timeout");
    ck_assert(vt_test_wait_until(cv_returned, &x, apr_time_from_sec(10)));
    /* re-locked on return */
    ck_assert(APR_STATUS_IS_EBUSY(vthread_mutex_trylock(x.m)));
    atomic_store(&x.release, 1);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(x.rv, APR_TIMEUP);
    ck_assert_int_ge(x.took, VT_MS(50));
    ck_assert_int_lt(x.took, VT_MS(50) + vt_test_soon());
    ck_assert_int_eq(vthread_mutex_trylock(x.m), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_unlock(x.m), APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

/* While a fiber waits on the cond, the mutex is free: the test thread
 * takes it, sets the predicate, signals. */
static apr_status_t fn_cond_consumer(void *arg)
{
    cv_t *x = arg;
    apr_time_t t0 = apr_time_now();
    if (!VT_CHECK(vthread_mutex_lock(x->m) == APR_SUCCESS)) {
        return APR_EGENERAL;
    }
    x->rv = APR_SUCCESS;
    while (!x->ready && x->rv == APR_SUCCESS) {
        x->rv = vthread_cond_wait(x->c, x->m, apr_time_from_sec(20));
    }
    x->took = vt_test_elapsed(t0);
    vthread_mutex_unlock(x->m);
    return APR_SUCCESS;
}

START_TEST(test_cond_signal_from_thread)
{
    vt_test_rt_t t;
    cv_t x;
    vt_fiber_t *f;
    memset(&x, 0, sizeof(x));
    x.rv = -1;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&x.m, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_cond_create(&x.c, t.pool), APR_SUCCESS);
    f = vt_test_go(&t, fn_cond_consumer, &x, "consumer");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    /* the waiter released the mutex */
    ck_assert_int_eq(vthread_mutex_trylock(x.m), APR_SUCCESS);
    x.ready = 1;
    vthread_cond_signal(x.c);
    ck_assert_int_eq(vthread_mutex_unlock(x.m), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(x.rv, APR_SUCCESS);
    ck_assert_int_lt(x.took, apr_time_from_sec(10));
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_cond_broadcast)
{
    enum { N = 8 };
    vt_test_rt_t t;
    cv_t x[N];
    vt_fiber_t *f[N];
    vthread_mutex_t *m;
    vthread_cond_t *c;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&m, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_cond_create(&c, t.pool), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        memset(&x[i], 0, sizeof(x[i]));
        x[i].m = m;
        x[i].c = c;
        x[i].rv = -1;
        f[i] = vt_test_go(&t, fn_cond_consumer, &x[i], "cond-waiter");
    }
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, N));
    ck_assert_int_eq(vthread_mutex_lock(m), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        x[i].ready = 1;
    }
    vthread_cond_broadcast(c);
    ck_assert_int_eq(vthread_mutex_unlock(m), APR_SUCCESS);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
        ck_assert_int_eq(x[i].rv, APR_SUCCESS);
        ck_assert_int_lt(x[i].took, apr_time_from_sec(10));
    }
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_cond_cancel_relocks)
{
    vt_test_rt_t t;
    cv_t x;
    vt_fiber_t *f;
    memset(&x, 0, sizeof(x));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_mutex_create(&x.m, t.pool), APR_SUCCESS);
    ck_assert_int_eq(vthread_cond_create(&x.c, t.pool), APR_SUCCESS);
    x.timeout = -1;
    x.rv = -1;
    f = vt_test_go(&t, fn_cond_timeout, &x, "cond-cancel");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    vt_spawn_cancel(f);
    ck_assert(vt_test_wait_until(cv_returned, &x, apr_time_from_sec(10)));
    /* cond_wait re-locks "whatever the result" */
    ck_assert(APR_STATUS_IS_EBUSY(vthread_mutex_trylock(x.m)));
    atomic_store(&x.release, 1);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(x.rv, APR_ECONNABORTED);
    ck_assert_int_eq(vthread_mutex_trylock(x.m), APR_SUCCESS);
    ck_assert_int_eq(vthread_mutex_unlock(x.m), APR_SUCCESS);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_sync");
    vt_test_add(s, test_event_kept_on_fiber);
    vt_test_add(s, test_event_kept_off_fiber);
    vt_test_add(s, test_event_wait_timeout);
    vt_test_add(s, test_event_signal_one_broadcast_rest);
    vt_test_add(s, test_event_cross_carrier);
    vt_test_add(s, test_event_plain_thread);
    vt_test_add(s, test_broadcast_many_from_thread);
    vt_test_add(s, test_event_cancel);
    vt_test_add(s, test_mutex_counter);
    vt_test_add(s, test_mutex_trylock);
    vt_test_add(s, test_mutex_fifo);
    vt_test_add(s, test_mutex_cancel_waiter);
    vt_test_add(s, test_cond_wait_timeout);
    vt_test_add(s, test_cond_signal_from_thread);
    vt_test_add(s, test_cond_broadcast);
    vt_test_add(s, test_cond_cancel_relocks);
    return vt_test_main(s);
}
