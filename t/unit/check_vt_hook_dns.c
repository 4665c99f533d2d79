/* Unit tests for vt_hook_dns.c: getaddrinfo through the transparent hook
 * (installed on libvt_hook_target.so, see vt_hook_test.h). With the
 * switch on, a lookup runs on the blocking pool while the fiber parks,
 * and answers exactly as the real call; a numeric host, which needs no
 * lookup, stays on the carrier. Only local names ("localhost", from
 * /etc/hosts) and argument errors: no test needs a network. */
#include "vt_hook_test.h"

#include <errno.h>
#include <string.h>

/* Same addresses, in the same order. */
static int same_list(const struct addrinfo *a, const struct addrinfo *b)
{
    for (; a && b; a = a->ai_next, b = b->ai_next) {
        if (a->ai_family != b->ai_family || a->ai_socktype != b->ai_socktype
            || a->ai_protocol != b->ai_protocol
            || a->ai_addrlen != b->ai_addrlen
            || memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen) != 0) {
            return 0;
        }
    }
    return a == NULL && b == NULL;
}

typedef struct {
    const char *node;
    const char *service;
    struct addrinfo hints;
    int rv;
    struct addrinfo *res;
} gai_t;

static void body_gai(void *arg)
{
    gai_t *o = arg;
    o->res = NULL;
    o->rv = vt_tgt.getaddrinfo(o->node, o->service, &o->hints, &o->res);
}

/* The hooked answer, on a fiber with the switch on, against libc's. */
static void check_same(vt_test_rt_t *t, gai_t *o, int want_pool)
{
    struct addrinfo *ref = NULL;
    int ref_rv = getaddrinfo(o->node, o->service, &o->hints, &ref);
    vt_blockpool_stats_t p0, p1;
    vt_hook_call_stats_t h0 = vt_hook_test_stats(VT_HOOK_GETADDRINFO), h1;

    vt_blockpool_stats(&p0);
    vt_hook_test_run(t, 1, body_gai, o);
    vt_blockpool_stats(&p1);
    h1 = vt_hook_test_stats(VT_HOOK_GETADDRINFO);
    ck_assert_int_eq(o->rv, ref_rv);
    ck_assert(same_list(o->res, ref));
    ck_assert_uint_eq(p1.done - p0.done, want_pool ? 1 : 0);
    ck_assert_uint_eq(h1.calls - h0.calls, 1);
    ck_assert_uint_eq(h1.parked - h0.parked, want_pool ? 1 : 0);
    ck_assert_uint_eq(h1.pinned - h0.pinned, 0);
    if (o->res) {
        freeaddrinfo(o->res);
    }
    if (ref) {
        freeaddrinfo(ref);
    }
}

START_TEST(test_getaddrinfo_localhost)
{
    vt_test_rt_t t;
    gai_t o = { "localhost", "80", { .ai_socktype = SOCK_STREAM }, -1,
                NULL };
    vt_test_rt_start(&t, 1);
    check_same(&t, &o, 1);
    ck_assert_int_eq(o.rv, 0);
    vt_test_rt_stop(&t);
}
END_TEST

START_TEST(test_getaddrinfo_numeric_stays)
{
    vt_test_rt_t t;
    gai_t o = { "127.0.0.1", "8080",
                { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM },
                -1, NULL };
    vt_test_rt_start(&t, 1);
    check_same(&t, &o, 0);
    ck_assert_int_eq(o.rv, 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* Argument errors: libc's EAI_ codes. */
START_TEST(test_getaddrinfo_errors)
{
    vt_test_rt_t t;
    gai_t noname = { NULL, NULL, { .ai_socktype = SOCK_STREAM }, -1, NULL };
    gai_t family = { "localhost", "80", { .ai_family = 12345 }, -1, NULL };
    gai_t service = { "localhost", "no-such-service-here",
                      { .ai_socktype = SOCK_STREAM }, -1, NULL };
    vt_test_rt_start(&t, 1);
    check_same(&t, &noname, 1);
    ck_assert_int_eq(noname.rv, EAI_NONAME);
    check_same(&t, &family, 1);
    ck_assert_int_eq(family.rv, EAI_FAMILY);
    check_same(&t, &service, 1);
    ck_assert_int_ne(service.rv, 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* Off a fiber and with the switch off: the real call, not counted, not
 * through the pool. */
START_TEST(test_getaddrinfo_unhooked)
{
    vt_test_rt_t t;
    gai_t o = { "localhost", "80", { .ai_socktype = SOCK_STREAM }, -1,
                NULL };
    vt_blockpool_stats_t p0, p1;
    vt_hook_call_stats_t h0 = vt_hook_test_stats(VT_HOOK_GETADDRINFO), h1;

    vt_test_rt_start(&t, 1);
    vt_blockpool_stats(&p0);
    body_gai(&o);
    ck_assert_int_eq(o.rv, 0);
    freeaddrinfo(o.res);
    vt_hook_test_run(&t, 0, body_gai, &o);
    ck_assert_int_eq(o.rv, 0);
    freeaddrinfo(o.res);
    vt_test_rt_stop(&t);
    vt_blockpool_stats(&p1);
    h1 = vt_hook_test_stats(VT_HOOK_GETADDRINFO);
    ck_assert_uint_eq(p1.done, p0.done);
    ck_assert_uint_eq(h1.calls, h0.calls);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_hook_dns");
    vt_hook_test_add(s, test_getaddrinfo_localhost);
    vt_hook_test_add(s, test_getaddrinfo_numeric_stays);
    vt_hook_test_add(s, test_getaddrinfo_errors);
    vt_hook_test_add(s, test_getaddrinfo_unhooked);
    return vt_test_main(s);
}
