/* Unit tests for vt_spawn.c: create/start/join/detach/discard, arguments
 * and return values, a fiber created but not started does not run and
 * holds capacity, many fibers, vthread_spawn/join with timeouts (off a
 * fiber and on one), spawn without a runtime, cancellation of a sleeping,
 * not yet started, running or joining fiber.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) uses 1,000
 * fibers instead of 10,000. */
#include "vt_test_util.h"
#include "vt_fiber.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Create, start, join, discard, detach. */

START_TEST(test_create_start_join)
{
    vt_test_rt_t t;
    vt_test_whoami_t w;
    vt_fiber_t *f = NULL;
    apr_status_t result = -1;
    memset(&w, 0, sizeof(w));
    vt_test_rt_start(&t, 2);

    /* off a fiber */
    ck_assert_int_eq(vthread_on_fiber(), 0);
    ck_assert_ptr_null(vt_fiber_current());

    ck_assert_int_eq(vt_spawn_create(&f, t.rt, vt_test_fn_whoami, &w, "job-1"),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(f);
    vt_spawn_start(f);
    ck_assert_int_eq(vt_wait_join(f, apr_time_from_sec(10), &result),
                     APR_SUCCESS);
    ck_assert_int_eq(result, 42);
    ck_assert_int_eq(w.arg_seen, 1);
    ck_assert_int_eq(w.on_fiber, 1);
    ck_assert_ptr_eq(w.self, f);
    ck_assert_int_ge(w.carrier, 0);
    ck_assert_int_lt(w.carrier, 2);
    ck_assert_str_eq(w.label, "job-1");
    ck_assert_int_eq(vt_runtime_carriers(t.rt), 2);
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);

    /* a NULL result pointer is allowed */
    f = vt_test_go(&t, vt_test_fn_whoami, &w, NULL);
    ck_assert_int_eq(vt_wait_join(f, -1, NULL), APR_SUCCESS);
    ck_assert_str_eq(w.label, "");
    vt_test_rt_stop(&t);
}
END_TEST

static apr_status_t fn_set_flag(void *arg)
{
    atomic_store((_Atomic int *)arg, 1);
    return APR_SUCCESS;
}

START_TEST(test_not_run_before_start)
{
    vt_test_rt_t t;
    vt_fiber_t *f;
    _Atomic int ran = 0;
    apr_status_t result = -1;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_spawn_create(&f, t.rt, fn_set_flag, &ran, "lazy"),
                     APR_SUCCESS);
    /* created counts as alive (it holds capacity) but does not run */
    ck_assert_uint_eq(vt_runtime_live(t.rt), 1);
    apr_sleep(VT_MS(50));
    ck_assert_int_eq(atomic_load(&ran), 0);
    vt_spawn_start(f);
    ck_assert_int_eq(vt_wait_join(f, apr_time_from_sec(10), &result),
                     APR_SUCCESS);
    ck_assert_int_eq(result, APR_SUCCESS);
    ck_assert_int_eq(atomic_load(&ran), 1);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_discard)
{
    vt_test_rt_t t;
    vt_fiber_t *f, *g;
    _Atomic int ran = 0;
    vt_test_config(&t, 2);
    t.cfg.max_fibers = 1;
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vt_spawn_create(&f, t.rt, fn_set_flag, &ran, "x"),
                     APR_SUCCESS);
    ck_assert_int_eq(vt_spawn_create(&g, t.rt, fn_set_flag, &ran, "y"),
                     APR_EAGAIN);
    vt_spawn_discard(f);
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);
    /* its unit of capacity came back */
    ck_assert_int_eq(vt_spawn_create(&g, t.rt, fn_set_flag, &ran, "y"),
                     APR_SUCCESS);
    vt_spawn_discard(g);
    apr_sleep(VT_MS(20));
    ck_assert_int_eq(atomic_load(&ran), 0);
    vt_test_rt_stop(&t);
}
END_TEST

static apr_status_t fn_detached(void *arg)
{
    vthread_sleep(VT_MS(20));
    atomic_fetch_add((_Atomic int *)arg, 1);
    return APR_SUCCESS;
}

START_TEST(test_detach)
{
    vt_test_rt_t t;
    _Atomic int done = 0;
    vt_test_rt_start(&t, 2);
    for (int i = 0; i < 10; i++) {
        vt_fiber_t *f = vt_test_go(&t, fn_detached, &done, "detached");
        vt_spawn_detach(f);
    }
    ck_assert(vt_test_wait_live(t.rt, 0));
    ck_assert_int_eq(atomic_load(&done), 10);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_create_einval)
{
    vt_test_rt_t t;
    vt_fiber_t *f = NULL;
    vthread_t *th = NULL;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_spawn_create(&f, t.rt, NULL, NULL, "null"),
                     APR_EINVAL);
    ck_assert_int_eq(vthread_spawn(&th, NULL, NULL), APR_EINVAL);
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Many fibers. */

typedef struct {
    _Atomic long sum;
    _Atomic int running;
    _Atomic int max_running;
} many_t;

typedef struct {
    many_t *m;
    long id;
} many_arg_t;

static apr_status_t fn_many(void *arg)
{
    many_arg_t *a = arg;
    int now = atomic_fetch_add(&a->m->running, 1) + 1;
    int max = atomic_load(&a->m->max_running);
    while (now > max
           && !atomic_compare_exchange_weak(&a->m->max_running, &max, now)) {
    }
    VT_CHECK(vthread_yield() == APR_SUCCESS);
    VT_CHECK(vthread_sleep(1000) == APR_SUCCESS);
    atomic_fetch_add(&a->m->sum, a->id);
    atomic_fetch_sub(&a->m->running, 1);
    return (apr_status_t)(a->id % 1000);
}

START_TEST(test_many_fibers)
{
    const long n = VT_N(10000, 1000);
    vt_test_rt_t t;
    many_t m;
    many_arg_t *args = calloc((size_t)n, sizeof(*args));
    vt_fiber_t **f = calloc((size_t)n, sizeof(*f));
    vt_carrier_stats_t s0, s1;
    ck_assert_ptr_nonnull(args);
    ck_assert_ptr_nonnull(f);
    atomic_init(&m.sum, 0);
    atomic_init(&m.running, 0);
    atomic_init(&m.max_running, 0);
    vt_test_config(&t, 2);
    t.cfg.stack_size = 64 * 1024;
    vt_test_rt_start_cfg(&t);
    vt_test_stats_sum(t.rt, &s0);
    for (long i = 0; i < n; i++) {
        args[i].m = &m;
        args[i].id = i;
        f[i] = vt_test_go(&t, fn_many, &args[i], "many");
    }
    for (long i = 0; i < n; i++) {
        ck_assert_int_eq(vt_test_join(f[i]), (apr_status_t)(i % 1000));
    }
    vt_test_stats_sum(t.rt, &s1);
    ck_assert_int_eq(atomic_load(&m.sum), n * (n - 1) / 2);
    ck_assert_int_eq(atomic_load(&m.running), 0);
    /* they were alive at the same time, not one after another */
    ck_assert_int_gt(atomic_load(&m.max_running), 1);
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);
    ck_assert_uint_eq(s1.started - s0.started, (apr_uint64_t)n);
    /* each ran, yielded and slept: at least three switch-ins */
    ck_assert_uint_ge(s1.switches - s0.switches, 3 * (apr_uint64_t)n);
    ck_assert_uint_eq(s1.live, 0);
    /* new fibers went to both carriers */
    for (int c = 0; c < 2; c++) {
        vt_carrier_stats_t cs;
        ck_assert_int_eq(vt_runtime_carrier_stats(t.rt, c, &cs), APR_SUCCESS);
        ck_assert_uint_gt(cs.started, 0);
    }
    vt_test_rt_stop(&t);
    free(f);
    free(args);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Public spawn/join. */

static apr_status_t fn_sleep_ms(void *arg)
{
    apr_status_t rv = vthread_sleep(VT_MS((long)(intptr_t)arg));
    return rv == APR_SUCCESS ? 7 : rv;
}

START_TEST(test_spawn_join_timeout)
{
    vt_test_rt_t t;
    vthread_t *th = NULL;
    apr_status_t result = -1;
    apr_time_t t0;
    apr_interval_time_t el;
    vt_test_rt_start(&t, 2);
    ck_assert_ptr_eq(vt_runtime_default(), t.rt);
    ck_assert_int_eq(vthread_spawn(&th, fn_sleep_ms, (void *)(intptr_t)300),
                     APR_SUCCESS);
    ck_assert_ptr_nonnull(th);
    t0 = apr_time_now();
    ck_assert_int_eq(vthread_join(th, VT_MS(30), &result), APR_TIMEUP);
    el = vt_test_elapsed(t0);
    ck_assert_int_ge(el, VT_MS(30));
    ck_assert_int_lt(el, VT_MS(300));
    ck_assert_int_eq(result, -1);
    /* the handle is still valid: join again */
    ck_assert_int_eq(vthread_join(th, 0, &result), APR_TIMEUP);
    ck_assert_int_eq(vthread_join(th, apr_time_from_sec(10), &result),
                     APR_SUCCESS);
    ck_assert_int_eq(result, 7);
    ck_assert_int_ge(vt_test_elapsed(t0), VT_MS(290));
    ck_assert_uint_eq(vt_runtime_live(t.rt), 0);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_spawn_detached)
{
    vt_test_rt_t t;
    _Atomic int done = 0;
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_spawn(NULL, fn_detached, &done), APR_SUCCESS);
    ck_assert_int_eq(vthread_spawn(NULL, fn_detached, &done), APR_SUCCESS);
    ck_assert(vt_test_wait_live(t.rt, 0));
    ck_assert_int_eq(atomic_load(&done), 2);
    vt_test_rt_stop(&t);
}
END_TEST


START_TEST(test_spawn_without_runtime)
{
    vthread_t *th = NULL;
    vt_test_rt_t t;
    /* nothing runs yet in this process (every earlier test stopped its
     * runtime): spawn is refused */
    ck_assert_ptr_null(vt_runtime_default());
    ck_assert_int_eq(vthread_spawn(&th, vt_test_fn_nothing, NULL), APR_EINVAL);
    /* and after a runtime stopped, it is refused again */
    vt_test_rt_start(&t, 1);
    ck_assert_ptr_eq(vt_runtime_default(), t.rt);
    ck_assert_int_eq(vt_runtime_stop(t.rt), APR_SUCCESS);
    {
        apr_status_t rv = vthread_spawn(&th, vt_test_fn_nothing, NULL);
        ck_assert_msg(rv == APR_EINVAL || rv == APR_ECONNABORTED,
                      "spawn after stop returned %d", rv);
    }
    ck_assert_ptr_null(vt_runtime_default());
    vt_test_rt_stop(&t);    /* stop twice is safe */
}
END_TEST

/* A fiber spawns and joins others: joining parks. */
typedef struct {
    apr_status_t join_short;
    apr_status_t join_long;
    apr_status_t result;
    apr_interval_time_t waited;
} nest_t;

static apr_status_t fn_parent(void *arg)
{
    nest_t *n = arg;
    vthread_t *kid = NULL;
    apr_time_t t0 = apr_time_now();
    if (!VT_CHECK(vthread_spawn(&kid, fn_sleep_ms, (void *)(intptr_t)100)
                  == APR_SUCCESS)) {
        return APR_EGENERAL;
    }
    n->join_short = vthread_join(kid, VT_MS(10), &n->result);
    n->join_long = vthread_join(kid, apr_time_from_sec(10), &n->result);
    n->waited = vt_test_elapsed(t0);
    return APR_SUCCESS;
}

START_TEST(test_spawn_join_on_fiber)
{
    vt_test_rt_t t;
    nest_t n;
    memset(&n, 0, sizeof(n));
    n.result = -1;
    vt_test_rt_start(&t, 1);    /* parent and child share the carrier */
    ck_assert_int_eq(vt_test_run(&t, fn_parent, &n), APR_SUCCESS);
    ck_assert_int_eq(n.join_short, APR_TIMEUP);
    ck_assert_int_eq(n.join_long, APR_SUCCESS);
    ck_assert_int_eq(n.result, 7);
    ck_assert_int_ge(n.waited, VT_MS(100));
    vt_test_rt_stop(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Cancellation. */

typedef struct {
    _Atomic int started;
    apr_status_t first;         /* the wait that was cancelled */
    apr_interval_time_t first_took;
    int cancelled_after;
    apr_status_t later_sleep, later_yield, later_join;
    apr_interval_time_t later_took;
} cancel_t;

static apr_status_t fn_cancel_me(void *arg)
{
    cancel_t *c = arg;
    apr_time_t t0 = apr_time_now();
    VT_CHECK(vthread_cancelled() == 0);
    atomic_store(&c->started, 1);
    c->first = vthread_sleep(apr_time_from_sec(20));
    c->first_took = vt_test_elapsed(t0);
    c->cancelled_after = vthread_cancelled();
    t0 = apr_time_now();
    c->later_sleep = vthread_sleep(apr_time_from_sec(20));
    c->later_yield = vthread_yield();
    c->later_took = vt_test_elapsed(t0);
    return c->first;
}

static int started(void *arg)
{
    return atomic_load(&((cancel_t *)arg)->started);
}

START_TEST(test_cancel_sleeping)
{
    vt_test_rt_t t;
    cancel_t c;
    vt_fiber_t *f;
    memset(&c, 0, sizeof(c));
    vt_test_rt_start(&t, 2);
    f = vt_test_go(&t, fn_cancel_me, &c, "cancel-me");
    ck_assert(vt_test_wait_until(started, &c, apr_time_from_sec(5)));
    ck_assert(vt_test_wait_parked(t.rt, 1, 0, 0));
    vt_spawn_cancel(f);
    vt_spawn_cancel(f);     /* idempotent */
    ck_assert_int_eq(vt_test_join(f), APR_ECONNABORTED);
    ck_assert_int_eq(c.first, APR_ECONNABORTED);
    ck_assert_int_lt(c.first_took, apr_time_from_sec(10));
    ck_assert_int_eq(c.cancelled_after, 1);
    ck_assert_int_eq(c.later_sleep, APR_ECONNABORTED);
    ck_assert_int_eq(c.later_yield, APR_ECONNABORTED);
    ck_assert_int_lt(c.later_took, vt_test_soon());
    vt_test_rt_stop(&t);
}
END_TEST

static apr_status_t fn_cancelled_at_start(void *arg)
{
    cancel_t *c = arg;
    c->cancelled_after = vthread_cancelled();
    c->first = vthread_sleep(apr_time_from_sec(20));
    return APR_SUCCESS;
}

START_TEST(test_cancel_before_start)
{
    vt_test_rt_t t;
    cancel_t c;
    vt_fiber_t *f;
    apr_time_t t0 = apr_time_now();
    memset(&c, 0, sizeof(c));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vt_spawn_create(&f, t.rt, fn_cancelled_at_start, &c,
                                     "early"), APR_SUCCESS);
    vt_spawn_cancel(f);
    vt_spawn_start(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(c.cancelled_after, 1);
    ck_assert_int_eq(c.first, APR_ECONNABORTED);
    ck_assert_int_lt(vt_test_elapsed(t0), apr_time_from_sec(10));
    vt_test_rt_stop(&t);
}
END_TEST

/* A fiber that never waits sees the flag through vthread_cancelled(). */
static apr_status_t fn_spin_until_cancelled(void *arg)
{
    cancel_t *c = arg;
    apr_time_t end = apr_time_now() + apr_time_from_sec(10);
    atomic_store(&c->started, 1);
    while (!vthread_cancelled() && apr_time_now() < end) {
    }
    c->cancelled_after = vthread_cancelled();
    return APR_SUCCESS;
}

START_TEST(test_cancel_running)
{
    vt_test_rt_t t;
    cancel_t c;
    vt_fiber_t *f;
    memset(&c, 0, sizeof(c));
    vt_test_config(&t, 2);
    t.cfg.pinned_warn = 0;
    vt_test_rt_start_cfg(&t);
    f = vt_test_go(&t, fn_spin_until_cancelled, &c, "spinner");
    ck_assert(vt_test_wait_until(started, &c, apr_time_from_sec(5)));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(c.cancelled_after, 1);
    vt_test_rt_stop(&t);
}
END_TEST

/* A fiber cancelled while it joins another: the join returns
 * APR_ECONNABORTED and the handle stays valid for a later join. */
typedef struct {
    vthread_t *target;
    apr_status_t join_rv;
    _Atomic int started;
} joiner_t;

static apr_status_t fn_joiner(void *arg)
{
    joiner_t *j = arg;
    atomic_store(&j->started, 1);
    j->join_rv = vthread_join(j->target, -1, NULL);
    return APR_SUCCESS;
}

static int joiner_started(void *arg)
{
    return atomic_load(&((joiner_t *)arg)->started);
}

START_TEST(test_cancel_joiner)
{
    vt_test_rt_t t;
    joiner_t j;
    vt_fiber_t *f;
    apr_status_t result = -1;
    memset(&j, 0, sizeof(j));
    vt_test_rt_start(&t, 2);
    ck_assert_int_eq(vthread_spawn(&j.target, fn_sleep_ms,
                                   (void *)(intptr_t)300), APR_SUCCESS);
    f = vt_test_go(&t, fn_joiner, &j, "joiner");
    ck_assert(vt_test_wait_until(joiner_started, &j, apr_time_from_sec(5)));
    ck_assert(vt_test_wait_parked(t.rt, 1, 0, 1));
    vt_spawn_cancel(f);
    ck_assert_int_eq(vt_test_join(f), APR_SUCCESS);
    ck_assert_int_eq(j.join_rv, APR_ECONNABORTED);
    ck_assert_int_eq(vthread_join(j.target, apr_time_from_sec(10), &result),
                     APR_SUCCESS);
    ck_assert_int_eq(result, 7);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_spawn");
    vt_test_add(s, test_create_start_join);
    vt_test_add(s, test_not_run_before_start);
    vt_test_add(s, test_discard);
    vt_test_add(s, test_detach);
    vt_test_add(s, test_create_einval);
    vt_test_add(s, test_many_fibers);
    vt_test_add(s, test_spawn_join_timeout);
    vt_test_add(s, test_spawn_detached);
    vt_test_add(s, test_spawn_without_runtime);
    vt_test_add(s, test_spawn_join_on_fiber);
    vt_test_add(s, test_cancel_sleeping);
    vt_test_add(s, test_cancel_before_start);
    vt_test_add(s, test_cancel_running);
    vt_test_add(s, test_cancel_joiner);
    return vt_test_main(s);
}
