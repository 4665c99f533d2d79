/* Unit tests for the pinning report (vt_hook.c) through vt_hook_dns.c: a
 * getaddrinfo made on a fiber while the blocking pool is saturated runs
 * on the carrier instead; it is counted as pinned, reported once per call
 * site with the object that made it, and answers as the real call does.
 * Its own program: the pool is configured to one thread and a queue of
 * one before anything uses it. */
#include "vt_hook_test.h"

#include <stdatomic.h>
#include <string.h>

static _Atomic int release_pool;

/* Holds a pool thread until the test releases it (at most 10 s). */
static void hold_pool_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000 && !atomic_load(&release_pool); i++) {
        usleep(10000);
    }
}

static apr_status_t fn_occupy(void *arg)
{
    (void)arg;
    return vt_blockpool_run(hold_pool_thread, NULL);
}

static int pool_busy(void *arg)
{
    vt_blockpool_stats_t s;
    vt_blockpool_stats(&s);
    return arg ? s.queued == 1 : s.busy == 1;
}

/* What the report function was told. */
static struct {
    int n;
    char call[32];
    char object[256];
    char why[128];
} reported;

static void report(const char *call, const char *object, const void *site,
                   const char *why)
{
    (void)site;
    reported.n++;
    snprintf(reported.call, sizeof(reported.call), "%s", call);
    snprintf(reported.object, sizeof(reported.object), "%s", object);
    snprintf(reported.why, sizeof(reported.why), "%s", why);
}

typedef struct {
    int rv;
    struct addrinfo *res;
} lookup_t;

/* Both lookups through one call of the target's: one call site. */
static __attribute__((noinline)) void lookup_once(lookup_t *o)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    o->rv = vt_tgt.getaddrinfo("localhost", "80", &hints, &o->res);
}

static void body_lookup_twice(void *arg)
{
    lookup_t *o = arg;
    lookup_once(&o[0]);
    lookup_once(&o[1]);
}

START_TEST(test_saturated_pool_pins_and_reports_once)
{
    vt_test_rt_t t;
    vt_fiber_t *a, *b;
    vt_blockpool_stats_t p;
    vt_hook_call_stats_t h0 = vt_hook_test_stats(VT_HOOK_GETADDRINFO), h1;
    lookup_t o[2] = { { -1, NULL }, { -1, NULL } };
    struct addrinfo *ref = NULL;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };

    vt_hook_set_report(report);
    vt_test_rt_start(&t, 2);
    /* One call holds the pool's only thread, one fills its queue. */
    a = vt_test_go(&t, fn_occupy, NULL, "a");
    ck_assert(vt_test_wait_until(pool_busy, NULL, vt_test_soon()));
    b = vt_test_go(&t, fn_occupy, NULL, "b");
    ck_assert(vt_test_wait_until(pool_busy, (void *)1, vt_test_soon()));

    vt_hook_test_run(&t, 1, body_lookup_twice, o);
    h1 = vt_hook_test_stats(VT_HOOK_GETADDRINFO);
    vt_blockpool_stats(&p);
    atomic_store(&release_pool, 1);
    ck_assert_int_eq(vt_test_join(a), APR_SUCCESS);
    ck_assert_int_eq(vt_test_join(b), APR_SUCCESS);
    vt_test_rt_stop(&t);
    vt_hook_set_report(NULL);

    /* Both lookups answered as libc does, on the carrier. */
    ck_assert_int_eq(getaddrinfo("localhost", "80", &hints, &ref), 0);
    ck_assert_int_eq(o[0].rv, 0);
    ck_assert_int_eq(o[1].rv, 0);
    ck_assert(o[0].res && o[1].res && ref);
    ck_assert_int_eq(o[0].res->ai_family, ref->ai_family);
    freeaddrinfo(o[0].res);
    freeaddrinfo(o[1].res);
    freeaddrinfo(ref);
    ck_assert_uint_eq(h1.calls - h0.calls, 2);
    ck_assert_uint_eq(h1.pinned - h0.pinned, 2);
    ck_assert_uint_eq(h1.parked - h0.parked, 0);
    ck_assert_uint_ge(p.refused, 2);
    /* One call site: one report, naming the call, the object that made
     * it and why. */
    ck_assert_int_eq(reported.n, 1);
    ck_assert_str_eq(reported.call, "getaddrinfo");
    ck_assert_ptr_nonnull(strstr(reported.object, "libvt_hook_target"));
    ck_assert_ptr_nonnull(strstr(reported.why, "saturated"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_hook_pin");

    vt_blockpool_configure(1, 1);
    vt_hook_test_add(s, test_saturated_pool_pins_and_reports_once);
    return vt_test_main(s);
}
