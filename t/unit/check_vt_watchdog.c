/* Unit tests for vt_watchdog.c: a fiber that holds its carrier longer than
 * pinned_warn is reported once, through the log callback, with
 * VT_MSG_PINNED and its label, while a fiber on the other carrier keeps
 * sleeping and waking on time; fibers that park often or hold the carrier
 * briefly are not reported; pinned_warn 0 disables the watchdog.
 *
 * Slow mode (VT_SLOW=1, ASan, valgrind: see vt_test_util.h) pins five
 * times longer and widens the lateness bound accordingly. Under valgrind,
 * which runs one thread at a time, a fiber spinning on the CPU starves the
 * watchdog and the other carrier, so there the "spinning" fibers pin their
 * carrier with a blocking call instead (which pins it just the same). */
#include "vt_test_util.h"

#include <stdatomic.h>
#include <string.h>

static apr_interval_time_t spin_time(void)
{
    return VT_MS(VT_N(300, 1500));
}

/* Hold the carrier for t without calling this API: spin on the CPU, or
 * under valgrind make a blocking libc call. */
static void spin(apr_interval_time_t t)
{
    apr_time_t end = apr_time_now() + t;
    if (vt_test_under_valgrind()) {
        apr_sleep(t);
        return;
    }
    while (apr_time_now() < end) {
    }
}

static apr_status_t fn_spin(void *arg)
{
    spin(*(apr_interval_time_t *)arg);
    return APR_SUCCESS;
}

/* A blocking libc call (not vthread_sleep) pins the carrier too. */
static apr_status_t fn_block(void *arg)
{
    apr_sleep(*(apr_interval_time_t *)arg);
    return APR_SUCCESS;
}

/* Sleeps 10 ms at a time until told to stop; records the worst lateness. */
typedef struct {
    _Atomic int stop;
    _Atomic int ticks;
    apr_interval_time_t worst;
} ticker_t;

static apr_status_t fn_ticker(void *arg)
{
    ticker_t *t = arg;
    while (!atomic_load(&t->stop)) {
        apr_time_t t0 = apr_time_now();
        apr_interval_time_t late;
        if (vthread_sleep(VT_MS(10)) != APR_SUCCESS) {
            break;
        }
        late = vt_test_elapsed(t0) - VT_MS(10);
        if (late > t->worst) {
            t->worst = late;
        }
        atomic_fetch_add(&t->ticks, 1);
    }
    return APR_SUCCESS;
}

static int ticking(void *arg)
{
    return atomic_load(&((ticker_t *)arg)->ticks) >= 3;
}

static apr_uint32_t pinned_on(const vt_runtime_t *rt, int carrier)
{
    vt_carrier_stats_t s;
    ck_assert_int_eq(vt_runtime_carrier_stats(rt, carrier, &s), APR_SUCCESS);
    return s.pinned;
}

START_TEST(test_pinned_reported_once)
{
    static const char label[] = "GET /cpu-bound?n=42 HTTP/1.1";
    vt_test_rt_t t;
    ticker_t tk;
    apr_interval_time_t st = spin_time();
    vt_fiber_t *ft, *fs;
    int ct, cs;
    memset(&tk, 0, sizeof(tk));
    vt_test_config(&t, 2);
    t.cfg.pinned_warn = VT_MS(50);
    vt_test_rt_start_cfg(&t);
    ft = vt_test_go(&t, fn_ticker, &tk, "ticker");
    ck_assert(vt_test_wait_until(ticking, &tk, apr_time_from_sec(10)));
    fs = vt_test_go(&t, fn_spin, &st, label);
    ct = vt_fiber_carrier_index(ft);
    cs = vt_fiber_carrier_index(fs);
    ck_assert_int_ne(ct, cs);
    ck_assert_int_eq(vt_test_join(fs), APR_SUCCESS);
    /* give the watchdog time for a (wrong) second report */
    apr_sleep(VT_MS(200));
    atomic_store(&tk.stop, 1);
    ck_assert_int_eq(vt_test_join(ft), APR_SUCCESS);

    if (vt_test_log_count(&t.log, VT_MSG_PINNED) != 1) {
        vt_test_log_dump(&t.log);
    }
    ck_assert_int_eq(vt_test_log_count(&t.log, VT_MSG_PINNED), 1);
    ck_assert_msg(vt_test_log_find(&t.log, VT_MSG_PINNED, label),
                  "the report does not name the fiber's label");
    ck_assert_msg(!vt_test_log_find(&t.log, VT_MSG_PINNED, "ticker"),
                  "the ticker was reported");
    ck_assert_uint_eq(pinned_on(t.rt, cs), 1);
    ck_assert_uint_eq(pinned_on(t.rt, ct), 0);
    /* the other carrier kept its fiber's timers on time */
    ck_assert_msg(tk.worst < st * 2 / 3,
                  "a sleeper on the other carrier woke %ld us late",
                  (long)tk.worst);
    ck_assert_int_gt(atomic_load(&tk.ticks), 3);
    vt_test_rt_stop(&t);
}
END_TEST

/* Two fibers pinning one after the other: one report each. */
START_TEST(test_each_pinned_fiber_reported)
{
    vt_test_rt_t t;
    apr_interval_time_t st = spin_time();
    vt_fiber_t *a, *b;
    vt_test_config(&t, 1);
    t.cfg.pinned_warn = VT_MS(50);
    vt_test_rt_start_cfg(&t);
    a = vt_test_go(&t, fn_spin, &st, "first-spinner");
    b = vt_test_go(&t, fn_spin, &st, "second-spinner");
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    apr_sleep(VT_MS(100));
    if (vt_test_log_count(&t.log, VT_MSG_PINNED) != 2) {
        vt_test_log_dump(&t.log);
    }
    ck_assert_int_eq(vt_test_log_count(&t.log, VT_MSG_PINNED), 2);
    ck_assert(vt_test_log_find(&t.log, VT_MSG_PINNED, "first-spinner"));
    ck_assert(vt_test_log_find(&t.log, VT_MSG_PINNED, "second-spinner"));
    ck_assert_uint_eq(pinned_on(t.rt, 0), 2);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_blocking_call_reported)
{
    static const char label[] = "blocking-libc-call";
    vt_test_rt_t t;
    apr_interval_time_t st = spin_time();
    vt_test_config(&t, 2);
    t.cfg.pinned_warn = VT_MS(50);
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vt_test_join(vt_test_go(&t, fn_block, &st, label)),
                     APR_SUCCESS);
    apr_sleep(VT_MS(100));
    if (vt_test_log_count(&t.log, VT_MSG_PINNED) != 1) {
        vt_test_log_dump(&t.log);
    }
    ck_assert_int_eq(vt_test_log_count(&t.log, VT_MSG_PINNED), 1);
    ck_assert(vt_test_log_find(&t.log, VT_MSG_PINNED, label));
    ck_assert_uint_eq(pinned_on(t.rt, 0) + pinned_on(t.rt, 1), 1);
    vt_test_rt_stop(&t);
}
END_TEST

/* Busy, but parking every few milliseconds, or busy only briefly: not
 * pinned. */
static apr_status_t fn_busy_but_parks(void *arg)
{
    (void)arg;
    for (int i = 0; i < 30; i++) {
        spin(VT_MS(8));
        if (i % 2) {
            vthread_sleep(500);
        }
        else {
            vthread_yield();
        }
    }
    return APR_SUCCESS;
}

START_TEST(test_parking_fiber_not_reported)
{
    vt_test_rt_t t;
    apr_interval_time_t brief = VT_MS(15);
    vt_test_config(&t, 2);
    t.cfg.pinned_warn = VT_MS(VT_N(50, 200));
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vt_test_run(&t, fn_busy_but_parks, NULL), APR_SUCCESS);
    ck_assert_int_eq(vt_test_run(&t, fn_spin, &brief), APR_SUCCESS);
    apr_sleep(VT_MS(100));
    if (vt_test_log_count(&t.log, VT_MSG_PINNED) != 0) {
        vt_test_log_dump(&t.log);
    }
    ck_assert_int_eq(vt_test_log_count(&t.log, VT_MSG_PINNED), 0);
    ck_assert_uint_eq(pinned_on(t.rt, 0) + pinned_on(t.rt, 1), 0);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_disabled)
{
    vt_test_rt_t t;
    apr_interval_time_t st = spin_time();
    vt_test_config(&t, 1);
    t.cfg.pinned_warn = 0;
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vt_test_run(&t, fn_spin, &st), APR_SUCCESS);
    apr_sleep(VT_MS(100));
    ck_assert_int_eq(vt_test_log_count(&t.log, VT_MSG_PINNED), 0);
    ck_assert_uint_eq(pinned_on(t.rt, 0), 0);
    vt_test_rt_stop(&t);
}
END_TEST

static apr_status_t fn_nap(void *arg)
{
    (void)arg;
    return vthread_sleep(VT_MS(100));   /* parked: the carrier idles */
}

/* An idle carrier (nothing to run, waiting in its poller) is not a
 * pinned fiber. */
START_TEST(test_idle_not_reported)
{
    vt_test_rt_t t;
    vt_test_config(&t, 2);
    t.cfg.pinned_warn = VT_MS(20);
    vt_test_rt_start_cfg(&t);
    ck_assert_int_eq(vt_test_run(&t, fn_nap, NULL), APR_SUCCESS);
    apr_sleep(VT_MS(300));
    ck_assert_int_eq(vt_test_log_count(&t.log, VT_MSG_PINNED), 0);
    vt_test_rt_stop(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_watchdog");
    vt_test_add(s, test_pinned_reported_once);
    vt_test_add(s, test_each_pinned_fiber_reported);
    vt_test_add(s, test_blocking_call_reported);
    vt_test_add(s, test_parking_fiber_not_reported);
    vt_test_add(s, test_disabled);
    vt_test_add(s, test_idle_not_reported);
    return vt_test_main(s);
}
