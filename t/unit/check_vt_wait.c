/* Unit tests for vt_wait.c, the wake-up protocol under every wait in the
 * runtime: whoever ends a wait must win vt_waitq_claim() (exactly one
 * party does), set the result and call vt_wait_resume(); the waiting side
 * returns that result and never before the resume. Covered: parking a
 * plain thread and a fiber (woken by a thread, a sibling fiber, a fiber on
 * another carrier; timeouts; cancel), the waiting side's timeout racing a
 * waker (stressed, on a thread and on a fiber), and vt_wait_queued's
 * locking and unlinking. The claim and the queue themselves are
 * check_vt_waitq.c's; deadlines are check_vt_clock.c's.
 *
 * A plain thread's parker is per thread and, with CK_FORK=no, every test
 * runs on the same thread: so no test resumes a waiter that is not waiting
 * (a stray resume would end that thread's next wait early).
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) uses fewer
 * rounds. */
#include "vt_test_util.h"
#include "vt_wait.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>


/* A result only a waker sets: neither the initial APR_SUCCESS nor one the
 * waiting side sets itself (APR_TIMEUP, APR_ECONNABORTED). */
#define WAKE_RV APR_EOF

/* Spin (yielding the CPU, or the carrier on a fiber) until *v == want, for
 * at most a third of the test's timeout. For hand-offs too quick for
 * vt_test_wait_until's 1 ms polls; bounded so that a broken protocol fails
 * instead of hanging. */
static int spin_until(_Atomic int *v, int want)
{
    int on_fiber = vthread_on_fiber();
    apr_time_t end = 0;
    for (unsigned i = 0;; i++) {
        if (atomic_load(v) == want) {
            return 1;
        }
        if ((i & 255) == 0) {
            apr_time_t now = vt_clock_now();
            if (end == 0) {
                end = now + apr_time_from_sec(vt_test_timeout() / 3);
            }
            else if (now > end) {
                return atomic_load(v) == want;
            }
        }
        if (on_fiber) {
            vthread_yield();
        }
        else {
            sched_yield();
        }
    }
}

/* Poll (sleeping 1 ms, parking if on a fiber) until *v == want, at most
 * about a third of the test's timeout. */
static int poll_until(_Atomic int *v, int want)
{
    apr_time_t end = vt_clock_now() + apr_time_from_sec(vt_test_timeout() / 3);
    while (atomic_load(v) != want) {
        if (vt_clock_now() > end) {
            return 0;
        }
        vthread_sleep(VT_MS(1));
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* One wait, on a fiber or a plain thread, and its waker. */

typedef struct {
    vt_waiter_t w;
    apr_interval_time_t timeout;
    int flags;
    vt_runtime_t *rt;           /* for a waker that polls the counters */
    apr_interval_time_t delay;  /* a waker's sleep before claiming */
    _Atomic int published;      /* w is initialised and reachable */
    _Atomic int resuming;       /* a waker won and is about to resume */
    _Atomic int returned;
    apr_status_t rv;
    int resumed_first;          /* resuming was set when the wait returned */
    int data_ok;                /* w.data was the waker's hand-over */
    apr_interval_time_t took;
    int carrier;                /* the waiter's, or -1 off a fiber */
    int waker_won;
    int waker_carrier;
    int parked_time_zero;       /* fiber: no time parked after the wait */
} one_t;

static void one_init(one_t *x, apr_interval_time_t timeout, int flags)
{
    memset(x, 0, sizeof(*x));
    x->timeout = timeout;
    x->flags = flags;
    x->rv = -1;
    x->carrier = x->waker_carrier = -1;
}

static int carrier_here(void)
{
    vt_fiber_t *f = vt_fiber_current();
    return f ? vt_fiber_carrier_index(f) : -1;
}

/* The waiting side; runs on a fiber or is called on the test thread. */
static apr_status_t fn_wait(void *arg)
{
    one_t *x = arg;
    apr_time_t t0;
    x->carrier = carrier_here();
    vt_wait_init(&x->w);
    atomic_store(&x->published, 1);
    t0 = vt_clock_now();
    x->rv = vt_wait_park(&x->w, VT_PARK_SYNC, x->timeout, x->flags);
    x->took = vt_clock_now() - t0;
    x->resumed_first = atomic_load(&x->resuming);
    x->data_ok = x->w.data == (void *)x;
    if (vt_fiber_current()) {
        x->parked_time_zero = vt_fiber_parked_time(vt_fiber_current()) == 0;
    }
    atomic_store(&x->returned, 1);
    return APR_SUCCESS;
}

/* The waking side: win the claim, hand a value over, then resume. */
static int wake(one_t *x, apr_status_t rv)
{
    if (!vt_waitq_claim(&x->w, rv)) {
        return 0;
    }
    x->w.data = x;
    atomic_store(&x->resuming, 1);
    vt_wait_resume(&x->w);
    return 1;
}

/* A waker on a plain thread or a fiber: once the waiter is published,
 * sleep x->delay (so that it has most likely parked), then wake it. */
static void waker_body(one_t *x)
{
    x->waker_carrier = carrier_here();
    if (!VT_CHECK(poll_until(&x->published, 1))) {
        return;
    }
    if (x->delay > 0) {
        vthread_sleep(x->delay);
    }
    x->waker_won = wake(x, WAKE_RV);
}

static void *thread_waker(void *arg)
{
    waker_body(arg);
    return NULL;
}

static apr_status_t fn_waker(void *arg)
{
    waker_body(arg);
    return APR_SUCCESS;
}

/* What every wait ended by a waker must show. */
static void check_woken(const one_t *x)
{
    ck_assert_int_eq(x->waker_won, 1);
    ck_assert_int_eq(x->rv, WAKE_RV);
    ck_assert_int_eq(x->resumed_first, 1);
    ck_assert_int_eq(x->data_ok, 1);
    ck_assert_int_lt(x->took, apr_time_from_sec(10));
}

/* ------------------------------------------------------------------ */
/* Parking a plain thread */

/* The test thread parks, untimed and then timed; a plain thread and then a
 * fiber wake it. */
START_TEST(test_thread_woken)
{
    vt_test_rt_t t;
    one_t x;
    vt_test_rt_start(&t, 1);
    for (int round = 0; round < 3; round++) {
        apr_thread_t *th = NULL;
        vt_fiber_t *f = NULL;
        one_init(&x, round == 0 ? -1 : apr_time_from_sec(20), 0);
        x.delay = VT_MS(20);
        if (round < 2) {
            th = vt_test_thread(t.pool, thread_waker, &x);
        }
        else {
            f = vt_test_go(&t, fn_waker, &x, "wakes-a-thread");
        }
        fn_wait(&x);
        if (th) {
            vt_test_thread_join(th);
        }
        else {
            ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
            ck_assert_int_eq(x.waker_carrier, 0);
        }
        ck_assert_int_eq(x.carrier, -1);
        check_woken(&x);
    }
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_thread_wait_timeout)
{
    vt_test_rt_t t;
    vt_waiter_t w;
    apr_time_t t0;
    apr_interval_time_t took;
    vt_test_rt_start(&t, 1);

    vt_wait_init(&w);
    t0 = vt_clock_now();
    ck_assert_int_eq(vt_wait_park(&w, VT_PARK_SYNC, VT_MS(50), 0),
                     APR_TIMEUP);
    took = vt_clock_now() - t0;
    ck_assert_int_ge(took, VT_MS(50));
    ck_assert_int_lt(took, VT_MS(50) + vt_test_soon());
    /* the timeout won the claim: a late waker loses */
    ck_assert_int_eq(atomic_load(&w.claimed), 1);
    ck_assert_int_eq(vt_waitq_claim(&w, WAKE_RV), 0);
    ck_assert_int_eq(w.result, APR_TIMEUP);

    /* timeout 0: at once */
    vt_wait_init(&w);
    t0 = vt_clock_now();
    ck_assert_int_eq(vt_wait_park(&w, VT_PARK_SYNC, 0, 0), APR_TIMEUP);
    ck_assert_int_lt(vt_clock_now() - t0, vt_test_soon());
    ck_assert_int_eq(vt_waitq_claim(&w, WAKE_RV), 0);

    /* nothing was left behind for the thread's next wait */
    vt_wait_init(&w);
    t0 = vt_clock_now();
    ck_assert_int_eq(vt_wait_park(&w, VT_PARK_SYNC, VT_MS(20), 0),
                     APR_TIMEUP);
    ck_assert_int_ge(vt_clock_now() - t0, VT_MS(20));
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    vt_waiter_t *w;
    apr_interval_time_t delay;
    _Atomic int resuming;
} late_resume_t;

static void *thread_late_resume(void *arg)
{
    late_resume_t *l = arg;
    apr_sleep(l->delay);
    atomic_store(&l->resuming, 1);
    vt_wait_resume(l->w);
    return NULL;
}

/* A waker claimed before (or as) the timeout expired but has not resumed
 * yet: the waiting side must wait for the resume and return the waker's
 * result, however short its own timeout (0 and 20 ms, resume at 100 ms). */
START_TEST(test_thread_claimed_waits_for_resume)
{
    vt_test_rt_t t;
    vt_waiter_t w;
    vt_test_rt_start(&t, 1);
    for (int round = 0; round < 2; round++) {
        late_resume_t l;
        apr_thread_t *th;
        apr_status_t rv;
        vt_wait_init(&w);
        ck_assert_int_eq(vt_waitq_claim(&w, WAKE_RV), 1);
        l.w = &w;
        l.delay = VT_MS(100);
        atomic_init(&l.resuming, 0);
        th = vt_test_thread(t.pool, thread_late_resume, &l);
        rv = vt_wait_park(&w, VT_PARK_SYNC, round == 0 ? 0 : VT_MS(20), 0);
        ck_assert_int_eq(atomic_load(&l.resuming), 1);
        vt_test_thread_join(th);
        ck_assert_int_eq(rv, WAKE_RV);
    }
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Parking a fiber */

START_TEST(test_fiber_woken_by_thread)
{
    vt_test_rt_t t;
    one_t x;
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);
    one_init(&x, apr_time_from_sec(20), 0);
    f = vt_test_go(&t, fn_wait, &x, "waits-for-thread");
    /* parked on its carrier, not blocking it */
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    ck_assert_int_eq(atomic_load(&x.returned), 0);
    x.waker_won = wake(&x, WAKE_RV);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    check_woken(&x);
    ck_assert_int_ge(x.carrier, 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* One carrier: the waker fiber runs while the waiter is parked on the same
 * carrier (the resume goes straight to that carrier's run queue). */
START_TEST(test_fiber_woken_by_sibling)
{
    vt_test_rt_t t;
    one_t x;
    vt_fiber_t *fw, *fk;
    vt_test_rt_start(&t, 1);
    one_init(&x, apr_time_from_sec(20), 0);
    x.delay = VT_MS(5);
    fw = vt_test_go(&t, fn_wait, &x, "waiter");
    fk = vt_test_go(&t, fn_waker, &x, "sibling-waker");
    ck_assert_int_eq(vt_test_join(fk), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fw), APR_SUCCESS);
    ck_assert_int_eq(x.carrier, 0);
    ck_assert_int_eq(x.waker_carrier, 0);
    check_woken(&x);
    vt_test_rt_stop(&t);
}
END_TEST

static int sync_parked(vt_runtime_t *rt)
{
    vt_carrier_stats_t s;
    vt_test_stats_sum(rt, &s);
    return s.parked_sync >= 1;
}

/* Waits (parking, so its own carrier stays free) until the waiter is
 * parked, then wakes it. */
static apr_status_t fn_waker_when_parked(void *arg)
{
    one_t *x = arg;
    x->waker_carrier = carrier_here();
    for (int i = 0; i < 10000 && !sync_parked(x->rt); i++) {
        vthread_sleep(VT_MS(1));
    }
    if (VT_CHECK(sync_parked(x->rt))) {
        x->waker_won = wake(x, WAKE_RV);
    }
    return APR_SUCCESS;
}

START_TEST(test_fiber_woken_cross_carrier)
{
    vt_test_rt_t t;
    one_t x;
    vt_fiber_t *fw, *fk;
    vt_test_rt_start(&t, 2);
    one_init(&x, apr_time_from_sec(20), 0);
    x.rt = t.rt;
    fw = vt_test_go(&t, fn_wait, &x, "waiter");
    fk = vt_test_go(&t, fn_waker_when_parked, &x, "other-carrier-waker");
    /* the least loaded carrier got the second fiber */
    ck_assert_int_ne(vt_fiber_carrier_index(fw), vt_fiber_carrier_index(fk));
    ck_assert_int_eq(vt_test_join(fk), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(fw), APR_SUCCESS);
    ck_assert_int_ne(x.carrier, x.waker_carrier);
    check_woken(&x);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_fiber_wait_timeout)
{
    vt_test_rt_t t;
    one_t x;
    vt_test_rt_start(&t, 2);

    /* timeout 0: at once, without parking */
    one_init(&x, 0, 0);
    ck_assert_int_eq(vt_test_run(&t, fn_wait, &x), APR_SUCCESS);
    ck_assert_int_eq(x.rv, APR_TIMEUP);
    ck_assert_int_lt(x.took, vt_test_soon());
    ck_assert_int_eq(x.parked_time_zero, 1);
    ck_assert_int_eq(vt_waitq_claim(&x.w, WAKE_RV), 0);

    one_init(&x, VT_MS(50), 0);
    ck_assert_int_eq(vt_test_run(&t, fn_wait, &x), APR_SUCCESS);
    ck_assert_int_eq(x.rv, APR_TIMEUP);
    ck_assert_int_ge(x.took, VT_MS(50));
    ck_assert_int_lt(x.took, VT_MS(50) + vt_test_soon());
    ck_assert_int_eq(x.parked_time_zero, 0);
    /* the timer won the claim: a late waker loses */
    ck_assert_int_eq(vt_waitq_claim(&x.w, WAKE_RV), 0);
    ck_assert_int_eq(x.w.result, APR_TIMEUP);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_fiber_cancel)
{
    vt_test_rt_t t;
    one_t x;
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);
    one_init(&x, apr_time_from_sec(20), 0);
    f = vt_test_go(&t, fn_wait, &x, "cancelled-waiter");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(x.rv, APR_ECONNABORTED);
    ck_assert_int_lt(x.took, apr_time_from_sec(10));
    /* the cancel won the claim: a late waker loses */
    ck_assert_int_eq(vt_waitq_claim(&x.w, WAKE_RV), 0);
    ck_assert_int_eq(x.w.result, APR_ECONNABORTED);
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    one_t one;                  /* the uncancellable wait */
    vt_waiter_t w2;             /* then a cancellable one */
    apr_status_t rv2;
    apr_interval_time_t took2;
} uncancel_t;

static apr_status_t fn_uncancellable_then_cancellable(void *arg)
{
    uncancel_t *u = arg;
    apr_time_t t0;
    fn_wait(&u->one);
    /* the fiber is still cancelled: the next cancellable wait ends at once */
    vt_wait_init(&u->w2);
    t0 = vt_clock_now();
    u->rv2 = vt_wait_park(&u->w2, VT_PARK_SYNC, apr_time_from_sec(20), 0);
    u->took2 = vt_clock_now() - t0;
    return APR_SUCCESS;
}

/* A cancel does not end a VT_WAIT_UNCANCELLABLE wait, which still returns
 * the waker's result when woken later. */
START_TEST(test_fiber_cancel_uncancellable)
{
    vt_test_rt_t t;
    uncancel_t u;
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);
    memset(&u, 0, sizeof(u));
    one_init(&u.one, -1, VT_WAIT_UNCANCELLABLE);
    f = vt_test_go(&t, fn_uncancellable_then_cancellable, &u, "uncancellable");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    vt_spawn_cancel(f);
    /* time for the carrier to pass the cancel on */
    apr_sleep(VT_MS(50));
    ck_assert_int_eq(atomic_load(&u.one.returned), 0);
    ck_assert(sync_parked(t.rt));
    u.one.waker_won = wake(&u.one, WAKE_RV);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    check_woken(&u.one);
    ck_assert_int_eq(u.rv2, APR_ECONNABORTED);
    ck_assert_int_lt(u.took2, vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    vt_waiter_t w;
    apr_status_t rv[2];
    apr_interval_time_t took[2];
    int parked_time_zero;
} precancel_t;

static apr_status_t fn_precancelled(void *arg)
{
    precancel_t *p = arg;
    apr_time_t t0;
    vt_spawn_cancel(vt_fiber_current());
    /* cancellable: at once, without parking */
    vt_wait_init(&p->w);
    t0 = vt_clock_now();
    p->rv[0] = vt_wait_park(&p->w, VT_PARK_SYNC, apr_time_from_sec(20), 0);
    p->took[0] = vt_clock_now() - t0;
    p->parked_time_zero = vt_fiber_parked_time(vt_fiber_current()) == 0;
    /* uncancellable: the cancel does not count, the timeout does */
    vt_wait_init(&p->w);
    t0 = vt_clock_now();
    p->rv[1] = vt_wait_park(&p->w, VT_PARK_SYNC, VT_MS(30),
                              VT_WAIT_UNCANCELLABLE);
    p->took[1] = vt_clock_now() - t0;
    return APR_SUCCESS;
}

START_TEST(test_fiber_already_cancelled)
{
    vt_test_rt_t t;
    precancel_t p;
    vt_test_rt_start(&t, 2);
    memset(&p, 0, sizeof(p));
    ck_assert_int_eq(vt_test_run(&t, fn_precancelled, &p), APR_SUCCESS);
    ck_assert_int_eq(p.rv[0], APR_ECONNABORTED);
    ck_assert_int_lt(p.took[0], vt_test_soon());
    ck_assert_int_eq(p.parked_time_zero, 1);
    ck_assert_int_eq(p.rv[1], APR_TIMEUP);
    ck_assert_int_ge(p.took[1], VT_MS(30));
    ck_assert_int_lt(p.took[1], VT_MS(30) + vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

/* A waker claimed the waiter before the fiber waits: with timeout 0, and
 * (second round) on a cancelled fiber, the fiber must still park until the
 * waker's resume and return its result, not its own. */
typedef struct {
    vt_waiter_t w;
    _Atomic int published;      /* round + 1 once w is ready */
    _Atomic int claimed;        /* round + 1 once the test thread won */
    _Atomic int resuming;       /* round + 1 just before the resume */
    apr_status_t rv[2];
    int resumed_first[2];
} preclaim_t;

static apr_status_t fn_preclaimed(void *arg)
{
    preclaim_t *p = arg;
    for (int round = 0; round < 2; round++) {
        vt_wait_init(&p->w);
        atomic_store(&p->published, round + 1);
        if (!VT_CHECK(poll_until(&p->claimed, round + 1))) {
            return APR_EGENERAL;
        }
        if (round == 1) {
            /* only now: a cancelled fiber's sleeps would not wait */
            vt_spawn_cancel(vt_fiber_current());
        }
        p->rv[round] = vt_wait_park(&p->w, VT_PARK_SYNC,
                                      round == 0 ? 0 : apr_time_from_sec(20),
                                      0);
        p->resumed_first[round] = atomic_load(&p->resuming) == round + 1;
    }
    return APR_SUCCESS;
}

static int preclaim_published(void *arg)
{
    preclaim_t *p = arg;
    return atomic_load(&p->published) == atomic_load(&p->claimed) + 1;
}

START_TEST(test_fiber_claimed_waits_for_resume)
{
    vt_test_rt_t t;
    preclaim_t p;
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);
    memset(&p, 0, sizeof(p));
    f = vt_test_go(&t, fn_preclaimed, &p, "preclaimed");
    for (int round = 0; round < 2; round++) {
        ck_assert(vt_test_wait_until(preclaim_published, &p,
                                     apr_time_from_sec(10)));
        ck_assert_int_eq(vt_waitq_claim(&p.w, WAKE_RV), 1);
        atomic_store(&p.claimed, round + 1);
        /* it parks (on the wait, not on its 1 ms polls) */
        ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
        atomic_store(&p.resuming, round + 1);
        vt_wait_resume(&p.w);
    }
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(p.rv[round], WAKE_RV);
        ck_assert_int_eq(p.resumed_first[round], 1);
    }
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The waiting side's timeout against a waker */

/* A waiter (the test thread, or a fiber) and a waker thread race, round
 * after round: short timeouts against short waker delays, so that the
 * timeout and the claim often land together, and the waker sometimes
 * pauses between its claim and its resume (as a sync object's waker does
 * while it releases its lock), so that the timeout often finds the waiter
 * claimed but not yet resumed. Each wait must end with exactly one winner:
 * it returns the waker's result iff the waker won (and only once that
 * waker is resuming it), otherwise APR_TIMEUP; the waiter is claimed
 * either way. A wait that returned before its resume would also leave a
 * wake-up behind for the next wait, which would then return unclaimed. */
typedef struct {
    _Atomic(vt_waiter_t *) slot;    /* the waiter handed to the waker */
    _Atomic int delay_us;           /* before the claim */
    _Atomic int resume_delay_us;    /* between a won claim and the resume */
    _Atomic int resuming;           /* round whose waker is resuming */
    _Atomic int done;               /* rounds the waker finished */
    _Atomic int won;                /* the last one's claim result */
    _Atomic int stop;
    /* the waiting side's settings and findings */
    const int *timeout_us, *delay_table_us;
    int n_timeouts, n_delays;
    int rounds;                     /* at most */
    int rounds_done;
    int woken, timed_out, bad, first_bad;
    char why[160];
} race_t;

static const int resume_delay_table_us[] = { 0, 0, 2, 10, 40 };
#define N_RESUME_DELAYS 5

static void busy_wait_us(int us)
{
    apr_time_t end = vt_clock_now() + us;
    while (vt_clock_now() < end) {
        /* spin: a sleep's granularity is coarser than the race window */
    }
}

static void *race_waker(void *arg)
{
    race_t *r = arg;
    for (int i = 1;; i++) {
        vt_waiter_t *w;
        int won;
        while ((w = atomic_exchange(&r->slot, NULL)) == NULL) {
            if (atomic_load(&r->stop)) {
                return NULL;
            }
            sched_yield();
        }
        busy_wait_us(atomic_load(&r->delay_us));
        won = vt_waitq_claim(w, WAKE_RV);
        if (won) {
            busy_wait_us(atomic_load(&r->resume_delay_us));
            atomic_store(&r->resuming, i);
            vt_wait_resume(w);
        }
        /* w may be gone from here: only our own state */
        atomic_store(&r->won, won);
        atomic_store(&r->done, i);
    }
}

/* The waiting side; on a fiber or the test thread. Records instead of
 * asserting, so that the waker thread is always stopped. On a loaded
 * machine each hand-off can cost a scheduler time slice: the rounds stop
 * after a sixth of the test's timeout, so that it stays well inside it
 * (every round done is checked all the same). */
static apr_status_t race_waiter(void *arg)
{
    race_t *r = arg;
    vt_waiter_t w;
    apr_time_t end = vt_clock_now() + apr_time_from_sec(vt_test_timeout() / 6);
    r->first_bad = -1;
    for (int i = 1; i <= r->rounds && vt_clock_now() < end; i++) {
        apr_status_t rv;
        int won, resuming, claimed, ok;
        r->rounds_done = i;
        vt_wait_init(&w);
        atomic_store(&r->delay_us, r->delay_table_us[i % r->n_delays]);
        atomic_store(&r->resume_delay_us,
                     resume_delay_table_us[i % N_RESUME_DELAYS]);
        atomic_store(&r->slot, &w);
        rv = vt_wait_park(&w, VT_PARK_SYNC,
                            r->timeout_us[i % r->n_timeouts], 0);
        resuming = atomic_load(&r->resuming);
        /* a losing waker may still be about to try: w must outlive it */
        if (!spin_until(&r->done, i)) {
            snprintf(r->why, sizeof(r->why), "waker stuck at round %d", i);
            r->bad++;
            break;
        }
        won = atomic_load(&r->won);
        claimed = atomic_load(&w.claimed);
        ok = claimed == 1 && w.result == rv
             && (won ? rv == WAKE_RV && resuming == i : rv == APR_TIMEUP);
        if (!ok) {
            if (r->bad++ == 0) {
                r->first_bad = i;
                snprintf(r->why, sizeof(r->why), "round %d: rv %d, claimed "
                         "%d, result %d, waker won %d, resuming %d", i, rv,
                         claimed, w.result, won, resuming);
            }
            continue;
        }
        r->woken += rv == WAKE_RV;
        r->timed_out += rv == APR_TIMEUP;
    }
    return APR_SUCCESS;
}

static void check_race(const race_t *r)
{
    ck_assert_msg(r->bad == 0, "%d bad waits (first %d): %s", r->bad,
                  r->first_bad, r->why);
    ck_assert_int_eq(r->woken + r->timed_out, r->rounds_done);
    /* both ends of the race were exercised */
    ck_assert_int_gt(r->woken, 0);
    ck_assert_int_gt(r->timed_out, 0);
}

START_TEST(test_thread_timeout_race)
{
    static const int timeout_us[] = { 0, 10, 25, 50, 100, 200, 400 };
    static const int delay_us[] = { 0, 5, 10, 20, 40, 80, 160, 300 };
    vt_test_rt_t t;
    race_t r;
    apr_thread_t *th;
    vt_test_rt_start(&t, 1);
    memset(&r, 0, sizeof(r));
    r.timeout_us = timeout_us;
    r.n_timeouts = 7;
    r.delay_table_us = delay_us;
    r.n_delays = 8;
    r.rounds = VT_N(4000, 400);
    th = vt_test_thread(t.pool, race_waker, &r);
    race_waiter(&r);
    atomic_store(&r.stop, 1);
    vt_test_thread_join(th);
    check_race(&r);
    vt_test_rt_stop(&t);
}
END_TEST

/* The same on a fiber, where the timeout is its carrier's timer (in whole
 * milliseconds: the reactor's poll) and a won claim must stop the timer
 * from resuming it a second time. */
START_TEST(test_fiber_timeout_race)
{
    static const int timeout_us[] = { 0, 100, 500, 1000, 2000 };
    static const int delay_us[] = { 0, 50, 200, 500, 900, 1100, 1500, 2500 };
    vt_test_rt_t t;
    race_t r;
    apr_thread_t *th;
    vt_fiber_t *f;
    vt_test_rt_start(&t, 1);
    memset(&r, 0, sizeof(r));
    r.timeout_us = timeout_us;
    r.n_timeouts = 5;
    r.delay_table_us = delay_us;
    r.n_delays = 8;
    r.rounds = VT_N(1000, 150);
    th = vt_test_thread(t.pool, race_waker, &r);
    f = vt_test_go(&t, race_waiter, &r, "races-a-waker");
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    atomic_store(&r.stop, 1);
    vt_test_thread_join(th);
    check_race(&r);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* vt_wait_queued */

typedef struct {
    pthread_mutex_t lock;       /* error-checking: unlock says who holds it */
    vt_waitq_t q;
    vt_waiter_t w;
    vt_waiter_t *push_in_before_park;   /* queued behind w, if set */
    apr_interval_time_t timeout;
    _Atomic int parking;        /* before_park ran */
    _Atomic int resuming;
    _Atomic int returned;
    apr_status_t rv;
    int lock_free_in_before_park;
    int queued_in_before_park;  /* w was the queue's tail by then */
    int resumed_first;
    int linked_after;
    apr_size_t count_after;
    int unlock_rc;              /* 0 only if the wait returned it held */
    apr_interval_time_t took;
} qwait_t;

static void qwait_init(qwait_t *x, apr_interval_time_t timeout)
{
    pthread_mutexattr_t a;
    memset(x, 0, sizeof(*x));
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&x->lock, &a);
    pthread_mutexattr_destroy(&a);
    x->timeout = timeout;
    x->rv = -1;
    x->unlock_rc = -1;
}

static void before_park(void *arg)
{
    qwait_t *x = arg;
    /* Nobody may hold the lock now: the waiter released it and the waker
     * waits for 'parking' before taking it. */
    int rc = pthread_mutex_trylock(&x->lock);
    x->lock_free_in_before_park = rc == 0;
    if (rc == 0) {
        x->queued_in_before_park = x->w.linked && x->q.tail == &x->w;
        if (x->push_in_before_park) {
            vt_waitq_push(&x->q, x->push_in_before_park);
        }
        pthread_mutex_unlock(&x->lock);
    }
    atomic_store(&x->parking, 1);
}

/* On a fiber or the test thread. */
static apr_status_t fn_qwait(void *arg)
{
    qwait_t *x = arg;
    apr_time_t t0;
    VT_CHECK(pthread_mutex_lock(&x->lock) == 0);
    vt_wait_init(&x->w);
    t0 = vt_clock_now();
    x->rv = vt_wait_queued(&x->q, &x->lock, &x->w, x->timeout, 0,
                          before_park, x);
    x->took = vt_clock_now() - t0;
    x->resumed_first = atomic_load(&x->resuming);
    x->linked_after = x->w.linked;
    x->count_after = x->q.count;
    x->unlock_rc = pthread_mutex_unlock(&x->lock);
    atomic_store(&x->returned, 1);
    return APR_SUCCESS;
}

/* A waker as the sync objects do it: claim under the lock, resume after
 * releasing it. @return the waiter claimed */
static vt_waiter_t *qwake(qwait_t *x)
{
    vt_waiter_t *list = NULL, *got;
    pthread_mutex_lock(&x->lock);
    got = vt_waitq_claim_first(&x->q, WAKE_RV, &list);
    pthread_mutex_unlock(&x->lock);
    if (got) {
        atomic_store(&x->resuming, 1);
    }
    vt_wait_resume_list(list);
    return got;
}

static void *thread_qwaker(void *arg)
{
    qwait_t *x = arg;
    if (VT_CHECK(poll_until(&x->parking, 1))) {
        VT_CHECK(qwake(x) == &x->w);
    }
    return NULL;
}

static void check_qwoken(const qwait_t *x)
{
    ck_assert_int_eq(x->lock_free_in_before_park, 1);
    ck_assert_int_eq(x->queued_in_before_park, 1);
    ck_assert_int_eq(x->rv, WAKE_RV);
    ck_assert_int_eq(x->resumed_first, 1);
    ck_assert_int_eq(x->linked_after, 0);
    ck_assert_uint_eq(x->count_after, 0);
    ck_assert_int_eq(x->unlock_rc, 0);
    ck_assert_int_lt(x->took, apr_time_from_sec(10));
}

/* The test thread waits in vt_wait_queued; a plain thread wakes it. */
START_TEST(test_waitq_wait_thread)
{
    vt_test_rt_t t;
    qwait_t x;
    apr_thread_t *th;
    vt_test_rt_start(&t, 1);
    qwait_init(&x, apr_time_from_sec(20));
    th = vt_test_thread(t.pool, thread_qwaker, &x);
    fn_qwait(&x);
    vt_test_thread_join(th);
    check_qwoken(&x);
    pthread_mutex_destroy(&x.lock);
    vt_test_rt_stop(&t);
}
END_TEST

/* A fiber waits in vt_wait_queued: woken by the test thread, then, in a
 * second wait, cancelled (unlinked, the lock retaken). */
START_TEST(test_waitq_wait_fiber)
{
    vt_test_rt_t t;
    qwait_t x;
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);

    qwait_init(&x, apr_time_from_sec(20));
    f = vt_test_go(&t, fn_qwait, &x, "waitq-woken");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    ck_assert_int_eq(atomic_load(&x.parking), 1);
    ck_assert_ptr_eq(qwake(&x), &x.w);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    check_qwoken(&x);
    pthread_mutex_destroy(&x.lock);

    qwait_init(&x, -1);
    f = vt_test_go(&t, fn_qwait, &x, "waitq-cancelled");
    ck_assert(vt_test_wait_parked(t.rt, 0, 0, 1));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(x.rv, APR_ECONNABORTED);
    ck_assert_int_eq(x.linked_after, 0);
    ck_assert_uint_eq(x.count_after, 0);
    ck_assert_int_eq(x.unlock_rc, 0);
    /* nothing left queued for a waker */
    ck_assert_ptr_null(qwake(&x));
    pthread_mutex_destroy(&x.lock);
    vt_test_rt_stop(&t);
}
END_TEST

/* A timed-out waiter in the middle of a queue unlinks itself (under the
 * lock, which it holds on return) and leaves its neighbours linked; a
 * waker then finds only them. */
START_TEST(test_waitq_wait_timeout_unlinks)
{
    vt_test_rt_t t;
    qwait_t x;
    vt_waiter_t before, after;
    vt_waiter_t *list = NULL;
    vt_test_rt_start(&t, 1);
    qwait_init(&x, VT_MS(30));
    vt_wait_init(&before);
    vt_wait_init(&after);
    vt_waitq_push(&x.q, &before);
    x.push_in_before_park = &after;
    fn_qwait(&x);
    ck_assert_int_eq(x.rv, APR_TIMEUP);
    ck_assert_int_ge(x.took, VT_MS(30));
    ck_assert_int_lt(x.took, VT_MS(30) + vt_test_soon());
    ck_assert_int_eq(x.lock_free_in_before_park, 1);
    ck_assert_int_eq(x.queued_in_before_park, 1);
    ck_assert_int_eq(x.unlock_rc, 0);
    ck_assert_int_eq(x.linked_after, 0);
    ck_assert_uint_eq(x.count_after, 2);
    ck_assert_ptr_eq(x.q.head, &before);
    ck_assert_ptr_eq(x.q.tail, &after);
    ck_assert_ptr_eq(before.next, &after);
    ck_assert_ptr_eq(after.prev, &before);
    ck_assert_ptr_eq(vt_waitq_claim_first(&x.q, WAKE_RV, &list), &before);
    ck_assert_ptr_eq(vt_waitq_claim_first(&x.q, WAKE_RV, &list), &after);
    ck_assert_ptr_null(vt_waitq_claim_first(&x.q, WAKE_RV, &list));
    ck_assert_int_eq(x.w.result, APR_TIMEUP);

    /* timeout 0: at once, unlinked, lock held */
    pthread_mutex_destroy(&x.lock);
    qwait_init(&x, 0);
    fn_qwait(&x);
    ck_assert_int_eq(x.rv, APR_TIMEUP);
    ck_assert_int_lt(x.took, vt_test_soon());
    ck_assert_int_eq(x.linked_after, 0);
    ck_assert_uint_eq(x.count_after, 0);
    ck_assert_int_eq(x.unlock_rc, 0);
    pthread_mutex_destroy(&x.lock);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_wait");
    vt_test_add(s, test_thread_woken);
    vt_test_add(s, test_thread_wait_timeout);
    vt_test_add(s, test_thread_claimed_waits_for_resume);
    vt_test_add(s, test_fiber_woken_by_thread);
    vt_test_add(s, test_fiber_woken_by_sibling);
    vt_test_add(s, test_fiber_woken_cross_carrier);
    vt_test_add(s, test_fiber_wait_timeout);
    vt_test_add(s, test_fiber_cancel);
    vt_test_add(s, test_fiber_cancel_uncancellable);
    vt_test_add(s, test_fiber_already_cancelled);
    vt_test_add(s, test_fiber_claimed_waits_for_resume);
    vt_test_add(s, test_thread_timeout_race);
    vt_test_add(s, test_fiber_timeout_race);
    vt_test_add(s, test_waitq_wait_thread);
    vt_test_add(s, test_waitq_wait_fiber);
    vt_test_add(s, test_waitq_wait_timeout_unlinks);
    return vt_test_main(s);
}
