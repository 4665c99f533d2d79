/* Unit tests for vt_hook_sleep.c: nanosleep, usleep and clock_nanosleep
 * through the transparent hooks (installed on libvt_hook_target.so, see
 * vt_hook_test.h). With the switch on, a sleep parks the fiber on its
 * carrier's timers: two fibers on ONE carrier sleeping 200 ms each end
 * together, well before the 400 ms of sleeping in turn. Invalid
 * arguments get libc's answer. */
#include "vt_hook_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

/* ---- answers, three ways -------------------------------------------- */

static void body_sleep_answers(void *arg)
{
    struct timespec ts = { 0, 1000000 }, bad = { 0, 1000000000L };
    struct timespec neg = { -1, 0 }, past;
    int rv, err;

    (void)arg;
    VT_CHECK(vt_tgt.nanosleep(&ts, NULL) == 0);
    VT_CHECK(vt_tgt.usleep(1000) == 0);
    VT_CHECK(vt_tgt.usleep(0) == 0);
    ts = (struct timespec){ 0, 0 };
    VT_CHECK(vt_tgt.nanosleep(&ts, NULL) == 0);
    /* EINVAL: tv_nsec out of range, or a negative time. */
    errno = 0;
    rv = vt_tgt.nanosleep(&bad, NULL);
    err = errno;
    VT_CHECK(rv == -1 && err == EINVAL);
    errno = 0;
    rv = vt_tgt.nanosleep(&neg, NULL);
    err = errno;
    VT_CHECK(rv == -1 && err == EINVAL);
    /* clock_nanosleep answers with the error, errno untouched. */
    errno = EDOM;
    VT_CHECK(vt_tgt.clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL)
             == EINVAL);
    VT_CHECK(vt_tgt.clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &bad,
                                    NULL) == EINVAL);
    /* A clock one cannot sleep on. */
    ts = (struct timespec){ 0, 1000 };
    VT_CHECK(vt_tgt.clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &ts, NULL)
             == clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &ts, NULL));
    VT_CHECK(errno == EDOM);
    /* A deadline already past: 0 at once. */
    past = vt_hook_test_abs(CLOCK_MONOTONIC, -1000);
    VT_CHECK(vt_tgt.clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past,
                                    NULL) == 0);
    past = (struct timespec){ 0, 0 };
    VT_CHECK(vt_tgt.clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &past,
                                    NULL) == 0);
    VT_CHECK(errno == EDOM);
}

START_TEST(test_sleep_answers)
{
    vt_hook_test_three_ways(body_sleep_answers, NULL);
}
END_TEST

/* ---- two sleepers on one carrier ------------------------------------ */

enum { NANOSLEEP, USLEEP, CLOCK_REL, CLOCK_ABS_MONO, CLOCK_ABS_REAL };

typedef struct {
    int which;
    long ms;
    struct timespec abs;    /* the deadline, for the TIMER_ABSTIME ones */
    int rv;
    int err;
    apr_int64_t done_ns;
    _Atomic int *asleep;    /* sleepers inside the hook now */
    int saw_other;          /* the other sleeper was asleep meanwhile */
} nap_t;

static void body_nap(void *arg)
{
    nap_t *o = arg;
    struct timespec rel = { o->ms / 1000, (o->ms % 1000) * 1000000L };

    errno = EDOM;
    atomic_fetch_add(o->asleep, 1);
    switch (o->which) {
    case NANOSLEEP:
        o->rv = vt_tgt.nanosleep(&rel, NULL);
        break;
    case USLEEP:
        o->rv = vt_tgt.usleep((useconds_t)(o->ms * 1000));
        break;
    case CLOCK_REL:
        o->rv = vt_tgt.clock_nanosleep(CLOCK_MONOTONIC, 0, &rel, NULL);
        break;
    case CLOCK_ABS_MONO:
        o->rv = vt_tgt.clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME,
                                       &o->abs, NULL);
        break;
    default:
        o->rv = vt_tgt.clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME,
                                       &o->abs, NULL);
        break;
    }
    o->err = errno;
    /* Both still counted: the other fell asleep before this one woke. */
    o->saw_other = atomic_fetch_sub(o->asleep, 1) == 2;
    o->done_ns = vt_hook_test_now_ns();
}

static void run_two_sleepers(int which)
{
    vt_test_rt_t t;
    long ms = VT_N(200, 1000);
    _Atomic int asleep = 0;
    nap_t o[2];
    vt_fiber_t *f[2];
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_SLEEP), after;
    apr_int64_t t0;
    struct timespec mono, real;

    vt_test_rt_start(&t, 1);
    t0 = vt_hook_test_now_ns();
    mono = vt_hook_test_abs(CLOCK_MONOTONIC, ms);
    real = vt_hook_test_abs(CLOCK_REALTIME, ms);
    for (int i = 0; i < 2; i++) {
        memset(&o[i], 0, sizeof(o[i]));
        o[i].which = which;
        o[i].ms = ms;
        o[i].abs = which == CLOCK_ABS_REAL ? real : mono;
        o[i].rv = -2;
        o[i].asleep = &asleep;
        f[i] = vt_hook_test_go(&t, 1, body_nap, &o[i], "nap");
    }
    ck_assert_int_eq(vt_test_join(f[0]), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(f[1]), APR_SUCCESS);
    vt_test_rt_stop(&t);
    after = vt_hook_test_stats(VT_HOOK_SLEEP);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(o[i].rv, 0);
        ck_assert_int_eq(o[i].err, EDOM);
        /* Never early (1 ms for rounding); together, not in turn. */
        ck_assert_int_ge(o[i].done_ns - t0, (ms - 1) * 1000000LL);
        ck_assert_int_lt(o[i].done_ns - t0, ms * 1900000LL);
    }
    ck_assert_msg(o[0].saw_other || o[1].saw_other,
                  "the sleepers did not sleep at the same time");
    ck_assert_uint_eq(after.calls - before.calls, 2);
    ck_assert_uint_eq(after.parked - before.parked, 2);
}

START_TEST(test_nanosleep_shares_carrier)
{
    run_two_sleepers(NANOSLEEP);
}
END_TEST

START_TEST(test_usleep_shares_carrier)
{
    run_two_sleepers(USLEEP);
}
END_TEST

START_TEST(test_clock_nanosleep_shares_carrier)
{
    run_two_sleepers(CLOCK_REL);
}
END_TEST

START_TEST(test_clock_nanosleep_abstime_monotonic)
{
    run_two_sleepers(CLOCK_ABS_MONO);
}
END_TEST

START_TEST(test_clock_nanosleep_abstime_realtime)
{
    run_two_sleepers(CLOCK_ABS_REAL);
}
END_TEST

/* Off a fiber the hook is the real sleep: not counted, still sleeps. */
START_TEST(test_sleep_off_fiber)
{
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_SLEEP), after;
    struct timespec ts = { 0, 30 * 1000000L };
    apr_int64_t t0 = vt_hook_test_now_ns();
    ck_assert_int_eq(vt_tgt.nanosleep(&ts, NULL), 0);
    ck_assert_int_ge(vt_hook_test_now_ns() - t0, 30 * 1000000LL);
    after = vt_hook_test_stats(VT_HOOK_SLEEP);
    ck_assert_uint_eq(after.calls, before.calls);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_hook_sleep");
    vt_hook_test_add(s, test_sleep_answers);
    vt_hook_test_add(s, test_nanosleep_shares_carrier);
    vt_hook_test_add(s, test_usleep_shares_carrier);
    vt_hook_test_add(s, test_clock_nanosleep_shares_carrier);
    vt_hook_test_add(s, test_clock_nanosleep_abstime_monotonic);
    vt_hook_test_add(s, test_clock_nanosleep_abstime_realtime);
    vt_hook_test_add(s, test_sleep_off_fiber);
    return vt_test_main(s);
}
