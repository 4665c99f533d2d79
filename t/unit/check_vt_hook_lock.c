/* Unit tests for vt_hook_lock.c: pthread mutexes and condition variables
 * through the transparent hooks (installed on libvt_hook_target.so, see
 * vt_hook_test.h). On a fiber with the switch on, a contended lock and a
 * condition wait park the fiber, not the carrier: the holder (or the
 * signaller) may be another fiber on the same carrier, and every test
 * here puts them on ONE carrier, where blocking would never end. Each
 * wait is bounded (a rescue thread, or a timed wait) so that such a
 * regression fails instead of hanging. */
#include "vt_hook_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

/* ---- answers, three ways -------------------------------------------- */

static void body_lock_answers(void *arg)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_t em;
    pthread_mutexattr_t a;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec bad = vt_hook_test_abs(CLOCK_REALTIME, 1000);

    (void)arg;
    errno = EDOM;
    VT_CHECK(vt_tgt.mutex_lock(&m) == 0);
    VT_CHECK(pthread_mutex_trylock(&m) == EBUSY);
    VT_CHECK(vt_tgt.mutex_unlock(&m) == 0);
    VT_CHECK(pthread_mutex_trylock(&m) == 0);
    VT_CHECK(vt_tgt.mutex_unlock(&m) == 0);
    /* An error-checking mutex: unlocking it unlocked is EPERM. */
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&em, &a);
    VT_CHECK(vt_tgt.mutex_unlock(&em) == EPERM);
    VT_CHECK(vt_tgt.mutex_lock(&em) == 0);
    VT_CHECK(vt_tgt.mutex_unlock(&em) == 0);
    pthread_mutex_destroy(&em);
    pthread_mutexattr_destroy(&a);
    /* Signal and broadcast with nobody waiting: 0. */
    VT_CHECK(vt_tgt.cond_signal(&c) == 0);
    VT_CHECK(vt_tgt.cond_broadcast(&c) == 0);
    /* A bad deadline: EINVAL, the mutex still held. */
    bad.tv_nsec = 1000000000L;
    VT_CHECK(vt_tgt.mutex_lock(&m) == 0);
    VT_CHECK(vt_tgt.cond_timedwait(&c, &m, &bad) == EINVAL);
    VT_CHECK(pthread_mutex_trylock(&m) == EBUSY);
    /* A deadline already past: ETIMEDOUT, the mutex held. */
    bad = vt_hook_test_abs(CLOCK_REALTIME, -1000);
    VT_CHECK(vt_tgt.cond_timedwait(&c, &m, &bad) == ETIMEDOUT);
    VT_CHECK(pthread_mutex_trylock(&m) == EBUSY);
    VT_CHECK(vt_tgt.mutex_unlock(&m) == 0);
    VT_CHECK(errno == EDOM);
    pthread_cond_destroy(&c);
    pthread_mutex_destroy(&m);
}

START_TEST(test_lock_answers)
{
    vt_hook_test_three_ways(body_lock_answers, NULL);
}
END_TEST

/* ---- a contended mutex, both fibers on one carrier ------------------ */

typedef struct {
    pthread_mutex_t m;
    _Atomic int a_locked;
    _Atomic int a_unlocking;
    _Atomic int b_in_lock;
    int b_waited;           /* A saw B inside lock while A held it */
    int b_after_a;          /* B got it only once A was releasing */
    int b_rv;
    int b_err;
} contend_t;

/* A: lock, sleep (parked, holding the mutex), unlock. */
static void body_holder(void *arg)
{
    contend_t *o = arg;
    VT_CHECK(vt_tgt.mutex_lock(&o->m) == 0);
    atomic_store(&o->a_locked, 1);
    vthread_sleep(VT_MS(150));
    o->b_waited = atomic_load(&o->b_in_lock);
    errno = ERANGE;
    atomic_store(&o->a_unlocking, 1);
    VT_CHECK(vt_tgt.mutex_unlock(&o->m) == 0);
}

/* B: lock while A holds it. */
static void body_contender(void *arg)
{
    contend_t *o = arg;
    int i;
    for (i = 0; i < 1000 && !atomic_load(&o->a_locked); i++) {
        vthread_sleep(VT_MS(1));
    }
    errno = EDOM;
    atomic_store(&o->b_in_lock, 1);
    o->b_rv = vt_tgt.mutex_lock(&o->m);
    o->b_err = errno;
    atomic_store(&o->b_in_lock, 0);
    o->b_after_a = atomic_load(&o->a_unlocking);
    if (o->b_rv == 0) {
        VT_CHECK(vt_tgt.mutex_unlock(&o->m) == 0);
    }
}

/* A blocked carrier: the contender sits in the real lock with the
 * holder's unlock never coming. A default mutex may be unlocked by any
 * thread in glibc: do so, and the test fails on its flags. */
static void rescue_unlock(void *arg)
{
    pthread_mutex_unlock(&((contend_t *)arg)->m);
}

START_TEST(test_mutex_contended_one_carrier)
{
    vt_test_rt_t t;
    contend_t o;
    vt_fiber_t *a, *b;
    vt_hook_rescue_t resc;
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_MUTEX), after;
    int rescued;

    memset(&o, 0, sizeof(o));
    pthread_mutex_init(&o.m, NULL);
    o.b_rv = -1;
    vt_test_rt_start(&t, 1);
    vt_hook_rescue_start(&resc, VT_HOOK_RESCUE_MS, rescue_unlock, &o);
    a = vt_hook_test_go(&t, 1, body_holder, &o, "holder");
    b = vt_hook_test_go(&t, 1, body_contender, &o, "contender");
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    rescued = vt_hook_rescue_end(&resc);
    vt_test_rt_stop(&t);
    after = vt_hook_test_stats(VT_HOOK_MUTEX);
    ck_assert_msg(!rescued && o.b_waited, "the holder did not run while "
                  "the contender was in lock: the carrier was blocked");
    ck_assert_int_eq(o.b_rv, 0);
    ck_assert_msg(o.b_after_a, "the contender got the mutex while the "
                  "holder still held it");
    ck_assert_int_eq(o.b_err, EDOM);
    ck_assert_uint_eq(after.calls - before.calls, 2);
    ck_assert_uint_eq(after.parked - before.parked, 1);
    pthread_mutex_destroy(&o.m);
}
END_TEST

/* ---- 4 fibers wait on one condition; a plain thread wakes them ------ */

enum { WAITERS = 4 };

typedef struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    int broadcast;          /* else one signal per token */
    int waiting;            /* fibers inside cond_wait (under m) */
    int max_waiting;
    int tokens;             /* signal mode: wake-ups handed out */
    int go;                 /* broadcast mode */
    int woke;
    int errs;
    apr_int64_t woke_ns[WAITERS];
    apr_int64_t sent_ns;
} cond_t;

static void body_cond_waiter(void *arg)
{
    cond_t *o = arg;
    int me;
    VT_CHECK(vt_tgt.mutex_lock(&o->m) == 0);
    o->waiting++;
    if (o->waiting > o->max_waiting) {
        o->max_waiting = o->waiting;
    }
    /* Each wait ends with a signal or, at worst, the hook's recheck; the
     * count bounds the loop whatever happens. */
    for (int i = 0; i < 100000; i++) {
        if (o->broadcast ? o->go : o->tokens > 0) {
            break;
        }
        if (vt_tgt.cond_wait(&o->c, &o->m) != 0) {
            o->errs++;
        }
    }
    if (!o->broadcast && o->tokens > 0) {
        o->tokens--;
    }
    o->waiting--;
    me = o->woke++;
    if (me < WAITERS) {
        o->woke_ns[me] = vt_hook_test_now_ns();
    }
    VT_CHECK(vt_tgt.mutex_unlock(&o->m) == 0);
}

static int all_waiting(void *arg)
{
    cond_t *o = arg;
    int n;
    pthread_mutex_lock(&o->m);
    n = o->waiting;
    pthread_mutex_unlock(&o->m);
    return n == WAITERS;
}

/* The plain thread: once the four wait (or a few seconds pass: a blocked
 * carrier lets only one in), wake them through the hooked calls, which
 * off a fiber are the real ones plus the fibers' parking lot. */
static void *cond_waker(void *arg)
{
    cond_t *o = arg;
    vt_test_wait_until(all_waiting, o, apr_time_from_msec(VT_HOOK_RESCUE_MS));
    VT_CHECK(vt_tgt.mutex_lock(&o->m) == 0);
    o->sent_ns = vt_hook_test_now_ns();
    if (o->broadcast) {
        o->go = 1;
        VT_CHECK(vt_tgt.cond_broadcast(&o->c) == 0);
    }
    VT_CHECK(vt_tgt.mutex_unlock(&o->m) == 0);
    for (int i = 0; !o->broadcast && i < WAITERS; i++) {
        VT_CHECK(vt_tgt.mutex_lock(&o->m) == 0);
        o->tokens++;
        VT_CHECK(vt_tgt.cond_signal(&o->c) == 0);
        VT_CHECK(vt_tgt.mutex_unlock(&o->m) == 0);
    }
    return NULL;
}

static void run_cond(int broadcast)
{
    vt_test_rt_t t;
    cond_t o;
    vt_fiber_t *f[WAITERS];
    apr_thread_t *th;
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_COND), after;

    memset(&o, 0, sizeof(o));
    pthread_mutex_init(&o.m, NULL);
    pthread_cond_init(&o.c, NULL);
    o.broadcast = broadcast;
    vt_test_rt_start(&t, 1);
    for (int i = 0; i < WAITERS; i++) {
        f[i] = vt_hook_test_go(&t, 1, body_cond_waiter, &o, "cond");
    }
    th = vt_test_thread(t.pool, cond_waker, &o);
    for (int i = 0; i < WAITERS; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
    }
    vt_test_thread_join(th);
    vt_test_rt_stop(&t);
    after = vt_hook_test_stats(VT_HOOK_COND);
    ck_assert_msg(o.max_waiting == WAITERS, "only %d fibers waited at "
                  "once: the carrier was blocked", o.max_waiting);
    ck_assert_int_eq(o.woke, WAITERS);
    ck_assert_int_eq(o.errs, 0);
    for (int i = 0; i < WAITERS; i++) {
        ck_assert_int_lt(o.woke_ns[i] - o.sent_ns, vt_test_soon() * 1000);
    }
    ck_assert_uint_ge(after.parked - before.parked, WAITERS);
    pthread_cond_destroy(&o.c);
    pthread_mutex_destroy(&o.m);
}

START_TEST(test_cond_broadcast_from_thread)
{
    run_cond(1);
}
END_TEST

START_TEST(test_cond_signal_from_thread)
{
    run_cond(0);
}
END_TEST

/* ---- cond_timedwait times out after the time asked ------------------ */

enum { COND_DEFAULT, COND_MONOTONIC, COND_PSHARED };

typedef struct {
    int kind;
    long ms;
    int rv;
    int err;
    int held_after;         /* the mutex is held again on return */
    int spurious;           /* returns of 0 before the deadline */
    apr_int64_t took_ns;
    _Atomic int in_wait;
    _Atomic int overlap;
} tw_t;

static void body_timedwait(void *arg)
{
    tw_t *o = arg;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_condattr_t a;
    pthread_cond_t c;
    clockid_t clock = o->kind == COND_MONOTONIC ? CLOCK_MONOTONIC
                                                : CLOCK_REALTIME;
    struct timespec until;
    apr_int64_t t0;
    int i;

    pthread_condattr_init(&a);
    if (o->kind == COND_MONOTONIC) {
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    }
    else if (o->kind == COND_PSHARED) {
        pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    }
    pthread_cond_init(&c, &a);
    pthread_condattr_destroy(&a);
    VT_CHECK(vt_tgt.mutex_lock(&m) == 0);
    t0 = vt_hook_test_now_ns();
    until = vt_hook_test_abs(clock, o->ms);
    errno = EDOM;
    atomic_store(&o->in_wait, 1);
    /* Spurious wakeups are allowed, so loop as a caller must; bounded. */
    o->rv = 0;
    for (i = 0; o->rv == 0 && i < 1000; i++) {
        o->rv = vt_tgt.cond_timedwait(&c, &m, &until);
        o->spurious += o->rv == 0;
        if (vt_hook_test_now_ns() - t0 > o->ms * 1000000LL * 20) {
            break;      /* the deadline went by long ago */
        }
    }
    atomic_store(&o->in_wait, 0);
    o->err = errno;
    o->took_ns = vt_hook_test_now_ns() - t0;
    o->held_after = pthread_mutex_trylock(&m) == EBUSY;
    VT_CHECK(vt_tgt.mutex_unlock(&m) == 0);
    pthread_cond_destroy(&c);
}

static void body_meanwhile(void *arg)
{
    tw_t *o = arg;
    vthread_sleep(VT_MS(50));
    atomic_store(&o->overlap, atomic_load(&o->in_wait));
}

static void run_timedwait(int kind)
{
    vt_test_rt_t t;
    tw_t o;
    vt_fiber_t *a, *b;

    memset(&o, 0, sizeof(o));
    o.kind = kind;
    o.ms = VT_N(200, 500);
    o.rv = -1;
    vt_test_rt_start(&t, 1);
    a = vt_hook_test_go(&t, 1, body_timedwait, &o, "timedwait");
    b = vt_hook_test_go(&t, 0, body_meanwhile, &o, "meanwhile");
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    vt_test_rt_stop(&t);
    ck_assert_int_eq(o.rv, ETIMEDOUT);
    /* Never early (1 ms for rounding), and soon after. */
    ck_assert_msg(o.took_ns >= (o.ms - 1) * 1000000LL, "timed out after "
                  "%lld ms of %ld", (long long)(o.took_ns / 1000000), o.ms);
    ck_assert_int_lt(o.took_ns, o.ms * 1000000LL + vt_test_soon() * 1000);
    ck_assert(o.held_after);
    ck_assert_int_eq(o.err, EDOM);
    ck_assert_msg(o.overlap, "the other fiber did not run during the wait");
}

START_TEST(test_cond_timedwait_times_out)
{
    run_timedwait(COND_DEFAULT);
}
END_TEST

/* A condition variable on CLOCK_MONOTONIC measures its deadline on that
 * clock (apr and httpd use the default; other libraries do not). */
START_TEST(test_cond_timedwait_monotonic)
{
    run_timedwait(COND_MONOTONIC);
}
END_TEST

/* Process-shared, on the default clock (CLOCK_REALTIME). */
START_TEST(test_cond_timedwait_pshared)
{
    run_timedwait(COND_PSHARED);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_hook_lock");
    vt_hook_test_add(s, test_lock_answers);
    vt_hook_test_add(s, test_mutex_contended_one_carrier);
    vt_hook_test_add(s, test_cond_broadcast_from_thread);
    vt_hook_test_add(s, test_cond_signal_from_thread);
    vt_hook_test_add(s, test_cond_timedwait_times_out);
    vt_hook_test_add(s, test_cond_timedwait_monotonic);
    vt_hook_test_add(s, test_cond_timedwait_pshared);
    return vt_test_main(s);
}
