/* Unit tests for vt_sleep.c: sleep bounds and wake order, sleeping fibers
 * share a carrier, yield interleaves runnable fibers, and the same calls
 * off a fiber (with and without a runtime).
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) spaces the
 * deadlines of the ordering test further apart and uses fewer fibers. */
#include "vt_test_util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    apr_interval_time_t t;
    apr_status_t rv;
    apr_interval_time_t took;
} nap_t;

static apr_status_t fn_nap(void *arg)
{
    nap_t *n = arg;
    apr_time_t t0 = apr_time_now();
    n->rv = vthread_sleep(n->t);
    n->took = vt_test_elapsed(t0);
    return APR_SUCCESS;
}

START_TEST(test_sleep_bounds)
{
    vt_test_rt_t t;
    nap_t n = { VT_MS(50), -1, 0 };
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_test_run(&t, fn_nap, &n), APR_SUCCESS);
    ck_assert_int_eq(n.rv, APR_SUCCESS);
    ck_assert_int_ge(n.took, VT_MS(50));
    ck_assert_int_lt(n.took, VT_MS(50) + vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_sleep_zero_negative)
{
    vt_test_rt_t t;
    nap_t z = { 0, -1, 0 }, neg = { -VT_MS(500), -1, 0 }, tiny = { 1, -1, 0 };
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_test_run(&t, fn_nap, &z), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_nap, &neg), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_nap, &tiny), APR_SUCCESS);
    ck_assert_int_eq(z.rv, APR_SUCCESS);
    ck_assert_int_eq(neg.rv, APR_SUCCESS);
    ck_assert_int_eq(tiny.rv, APR_SUCCESS);
    ck_assert_int_lt(z.took, vt_test_soon());
    ck_assert_int_lt(neg.took, vt_test_soon());
    ck_assert_int_ge(tiny.took, 1);
    ck_assert_int_lt(tiny.took, vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

/* Fibers sleep until deadlines spaced `gap` apart, given in shuffled order
 * and measured from one common start; they must wake in deadline order. */
enum { ORDER_N = 8 };

typedef struct {
    apr_time_t start;
    apr_interval_time_t gap;
    _Atomic int next;
    int woke[ORDER_N];      /* slot -> rank */
} order_t;

typedef struct {
    order_t *o;
    int rank;
} order_arg_t;

static apr_status_t fn_ordered(void *arg)
{
    order_arg_t *a = arg;
    apr_time_t deadline = a->o->start + (a->rank + 1) * a->o->gap;
    int slot;
    VT_CHECK(vthread_sleep(deadline - apr_time_now()) == APR_SUCCESS);
    VT_CHECK(apr_time_now() >= deadline);
    slot = atomic_fetch_add(&a->o->next, 1);
    if (slot < ORDER_N) {
        a->o->woke[slot] = a->rank;
    }
    return APR_SUCCESS;
}

static void run_order(int carriers, apr_interval_time_t gap)
{
    static const int shuffled[ORDER_N] = { 5, 2, 7, 0, 3, 6, 1, 4 };
    vt_test_rt_t t;
    order_t o;
    order_arg_t a[ORDER_N];
    vt_fiber_t *f[ORDER_N];
    memset(&o, 0, sizeof(o));
    vt_test_rt_start(&t, carriers);
    o.gap = gap;
    /* leave time to start them all before the first deadline */
    o.start = apr_time_now() + 2 * gap;
    for (int i = 0; i < ORDER_N; i++) {
        a[i].o = &o;
        a[i].rank = shuffled[i];
        f[i] = vt_test_go(&t, fn_ordered, &a[i], "ordered");
    }
    for (int i = 0; i < ORDER_N; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
    }
    ck_assert_int_eq(atomic_load(&o.next), ORDER_N);
    for (int i = 0; i < ORDER_N; i++) {
        ck_assert_msg(o.woke[i] == i, "wake %d was rank %d", i, o.woke[i]);
    }
    vt_test_rt_stop(&t);
}

START_TEST(test_sleep_order_one_carrier)
{
    run_order(1, VT_MS(VT_N(20, 150)));
}
END_TEST

START_TEST(test_sleep_order_two_carriers)
{
    run_order(2, VT_MS(VT_N(40, 250)));
}
END_TEST

/* Sleeping parks: 100 fibers each sleeping 100 ms on ONE carrier finish in
 * far less than the 10 s they would take one after another. */
START_TEST(test_sleepers_share_carrier)
{
    const int n = VT_N(100, 30);
    vt_test_rt_t t;
    nap_t naps[100];
    vt_fiber_t *f[100];
    apr_time_t t0;
    apr_interval_time_t el;
    vt_carrier_stats_t s;
    vt_test_rt_start(&t, 1);
    t0 = apr_time_now();
    for (int i = 0; i < n; i++) {
        naps[i].t = VT_MS(100);
        naps[i].rv = -1;
        f[i] = vt_test_go(&t, fn_nap, &naps[i], "sharer");
    }
    ck_assert(vt_test_wait_parked(t.rt, (apr_uint32_t)n, 0, 0));
    ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, 0, &s), APR_SUCCESS);
    ck_assert_uint_eq(s.parked_timer, (apr_uint32_t)n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), APR_SUCCESS);
        ck_assert_int_eq(naps[i].rv, APR_SUCCESS);
        ck_assert_int_ge(naps[i].took, VT_MS(100));
    }
    el = vt_test_elapsed(t0);
    ck_assert_int_lt(el, (apr_interval_time_t)n * VT_MS(100) / 4);
    ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, 0, &s), APR_SUCCESS);
    ck_assert_uint_eq(s.parked_timer, 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* A short sleep is not held up by a long one parked before it on the same
 * carrier. */
START_TEST(test_short_overtakes_long)
{
    vt_test_rt_t t;
    nap_t lng = { VT_MS(1000), -1, 0 }, sht = { VT_MS(20), -1, 0 };
    vt_fiber_t *fl, *fs;
    vt_test_rt_start(&t, 1);
    fl = vt_test_go(&t, fn_nap, &lng, "long");
    ck_assert(vt_test_wait_parked(t.rt, 1, 0, 0));
    fs = vt_test_go(&t, fn_nap, &sht, "short");
    ck_assert_int_eq(vt_test_join(fs), APR_SUCCESS);
    ck_assert_int_eq(sht.rv, APR_SUCCESS);
    ck_assert_int_lt(sht.took, VT_MS(20) + vt_test_soon() / 2);
    ck_assert_int_eq(vt_test_join(fl), APR_SUCCESS);
    ck_assert_int_ge(lng.took, VT_MS(1000));
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* yield */

enum { YIELD_ROUNDS = 5 };

typedef struct {
    char trace[4 * YIELD_ROUNDS + 1];
    _Atomic int len;
} trace_t;

typedef struct {
    trace_t *tr;
    char id;
} yielder_t;

static apr_status_t fn_yielder(void *arg)
{
    yielder_t *y = arg;
    for (int i = 0; i < YIELD_ROUNDS; i++) {
        int at = atomic_fetch_add(&y->tr->len, 1);
        if (at < 4 * YIELD_ROUNDS) {
            y->tr->trace[at] = y->id;
        }
        VT_CHECK(vthread_yield() == APR_SUCCESS);
    }
    return APR_SUCCESS;
}

typedef struct {
    vt_runtime_t *rt;
    trace_t tr;
    yielder_t y[3];
} yield_test_t;

/* Runs on the only carrier: creates and starts three yielders, which are
 * thus all runnable before any of them runs, then joins them. */
static apr_status_t fn_yield_parent(void *arg)
{
    yield_test_t *yt = arg;
    vt_fiber_t *f[3];
    for (int i = 0; i < 3; i++) {
        yt->y[i].tr = &yt->tr;
        yt->y[i].id = (char)('A' + i);
        if (!VT_CHECK(vt_spawn_create(&f[i], yt->rt, fn_yielder, &yt->y[i],
                                      "yielder") == APR_SUCCESS)) {
            return APR_EGENERAL;
        }
    }
    for (int i = 0; i < 3; i++) {
        vt_spawn_start(f[i]);
    }
    for (int i = 0; i < 3; i++) {
        VT_CHECK(vt_wait_join(f[i], -1, NULL) == APR_SUCCESS);
    }
    return APR_SUCCESS;
}

START_TEST(test_yield_interleaves)
{
    vt_test_rt_t t;
    yield_test_t yt;
    memset(&yt, 0, sizeof(yt));
    vt_test_rt_start(&t, 1);
    yt.rt = t.rt;
    ck_assert_int_eq(vt_test_run(&t, fn_yield_parent, &yt), APR_SUCCESS);
    ck_assert_int_eq(atomic_load(&yt.tr.len), 3 * YIELD_ROUNDS);
    yt.tr.trace[3 * YIELD_ROUNDS] = '\0';
    ck_assert_str_eq(yt.tr.trace, "ABCABCABCABCABC");
    vt_test_rt_stop(&t);
}
END_TEST

typedef struct {
    int n;
    apr_status_t rv;
} alone_t;

static apr_status_t fn_yield_alone(void *arg)
{
    alone_t *a = arg;
    a->rv = APR_SUCCESS;
    for (int i = 0; i < a->n && a->rv == APR_SUCCESS; i++) {
        a->rv = vthread_yield();
    }
    return APR_SUCCESS;
}

START_TEST(test_yield_alone)
{
    vt_test_rt_t t;
    alone_t a = { VT_N(10000, 1000), -1 };
    apr_time_t t0 = apr_time_now();
    vt_test_rt_start(&t, 1);
    ck_assert_int_eq(vt_test_run(&t, fn_yield_alone, &a), APR_SUCCESS);
    ck_assert_int_eq(a.rv, APR_SUCCESS);
    ck_assert_int_lt(vt_test_elapsed(t0), apr_time_from_sec(10));
    vt_test_rt_stop(&t);
}
END_TEST

/* A yielding loop lets a sleeper on the same carrier wake on time. */
typedef struct {
    _Atomic int stop;
    long spins;
} busy_t;

static apr_status_t fn_busy_yield(void *arg)
{
    busy_t *b = arg;
    while (!atomic_load(&b->stop)) {
        if (vthread_yield() != APR_SUCCESS) {
            break;
        }
        b->spins++;
    }
    return APR_SUCCESS;
}

START_TEST(test_yield_lets_sleeper_wake)
{
    vt_test_rt_t t;
    busy_t b;
    nap_t n = { VT_MS(30), -1, 0 };
    vt_fiber_t *fb, *fn;
    atomic_init(&b.stop, 0);
    b.spins = 0;
    vt_test_config(&t, 1);
    t.cfg.pinned_warn = 0;
    vt_test_rt_start_cfg(&t);
    fb = vt_test_go(&t, fn_busy_yield, &b, "busy");
    fn = vt_test_go(&t, fn_nap, &n, "sleeper");
    ck_assert_int_eq(vt_test_join(fn), APR_SUCCESS);
    atomic_store(&b.stop, 1);
    ck_assert_int_eq(vt_test_join(fb), APR_SUCCESS);
    ck_assert_int_eq(n.rv, APR_SUCCESS);
    ck_assert_int_ge(n.took, VT_MS(30));
    ck_assert_int_lt(n.took, VT_MS(30) + vt_test_soon());
    ck_assert_int_gt(b.spins, 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Off a fiber. */

static void off_fiber_checks(void)
{
    apr_time_t t0 = apr_time_now();
    apr_interval_time_t el;
    ck_assert_int_eq(vthread_on_fiber(), 0);
    ck_assert_int_eq(vthread_cancelled(), 0);
    ck_assert_int_eq(vthread_sleep(VT_MS(50)), APR_SUCCESS);
    el = vt_test_elapsed(t0);
    ck_assert_int_ge(el, VT_MS(50));
    ck_assert_int_lt(el, VT_MS(50) + vt_test_soon());
    ck_assert_int_eq(vthread_sleep(0), APR_SUCCESS);
    ck_assert_int_eq(vthread_sleep(-5), APR_SUCCESS);
    ck_assert_int_eq(vthread_yield(), APR_SUCCESS);
}

START_TEST(test_off_fiber_no_runtime)
{
    ck_assert_ptr_null(vt_runtime_default());
    off_fiber_checks();
}
END_TEST

typedef struct {
    apr_status_t sleep_rv, yield_rv;
    apr_interval_time_t took;
    int on_fiber, cancelled;
} plain_t;

static void *plain_thread(void *arg)
{
    plain_t *p = arg;
    apr_time_t t0 = apr_time_now();
    p->on_fiber = vthread_on_fiber();
    p->cancelled = vthread_cancelled();
    p->sleep_rv = vthread_sleep(VT_MS(30));
    p->took = vt_test_elapsed(t0);
    p->yield_rv = vthread_yield();
    return NULL;
}

START_TEST(test_off_fiber_with_runtime)
{
    vt_test_rt_t t;
    plain_t p;
    memset(&p, -1, sizeof(p));
    vt_test_rt_start(&t, 2);
    off_fiber_checks();
    vt_test_thread_join(vt_test_thread(t.pool, plain_thread, &p));
    ck_assert_int_eq(p.on_fiber, 0);
    ck_assert_int_eq(p.cancelled, 0);
    ck_assert_int_eq(p.sleep_rv, APR_SUCCESS);
    ck_assert_int_eq(p.yield_rv, APR_SUCCESS);
    ck_assert_int_ge(p.took, VT_MS(30));
    vt_test_rt_stop(&t);
}
END_TEST

/* Cancelled while asleep: returns early with APR_ECONNABORTED. */
START_TEST(test_sleep_cancelled)
{
    vt_test_rt_t t;
    nap_t n = { apr_time_from_sec(30), -1, 0 };
    vt_fiber_t *f;
    vt_test_rt_start(&t, 2);
    f = vt_test_go(&t, fn_nap, &n, "napper");
    ck_assert(vt_test_wait_parked(t.rt, 1, 0, 0));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(n.rv, APR_ECONNABORTED);
    ck_assert_int_lt(n.took, apr_time_from_sec(10));
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_sleep");
    vt_test_add(s, test_sleep_bounds);
    vt_test_add(s, test_sleep_zero_negative);
    vt_test_add(s, test_sleep_order_one_carrier);
    vt_test_add(s, test_sleep_order_two_carriers);
    vt_test_add(s, test_sleepers_share_carrier);
    vt_test_add(s, test_short_overtakes_long);
    vt_test_add(s, test_yield_interleaves);
    vt_test_add(s, test_yield_alone);
    vt_test_add(s, test_yield_lets_sleeper_wake);
    vt_test_add(s, test_off_fiber_no_runtime);
    vt_test_add(s, test_off_fiber_with_runtime);
    vt_test_add(s, test_sleep_cancelled);
    return vt_test_main(s);
}
