/* Shared by the transparent-mode hook suites: see vt_hook_test.h. */
#ifdef HAVE_CONFIG_H
#include "vt_autoconf.h"
#endif
#include "vt_hook_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#include <apr_strings.h>

/* unit.am defines both: the libtool objects of the build tree. */
const char vt_hook_target_path[] = VT_HOOK_TARGET_SO;
const char vt_hook_target2_path[] = VT_HOOK_TARGET2_SO;

vt_hook_target_t vt_tgt;
apr_size_t vt_hook_test_patched;

static void *target_handle;

int vt_hook_test_filter(const char *path, apr_uintptr_t base, void *baton)
{
    (void)base;
    (void)baton;
    return strstr(path, "/libvt_hook_target") != NULL;
}

#define TGT_SYM(field, name)                                             \
    do {                                                                 \
        void *sym_ = dlsym(target_handle, name);                         \
        ck_assert_msg(sym_ != NULL, "dlsym %s: %s", name, dlerror());   \
        memcpy(&vt_tgt.field, &sym_, sizeof(sym_));                      \
    } while (0)

void vt_hook_test_load(void)
{
    if (target_handle) {
        return;
    }
    /* RTLD_NOW: every slot is bound before the hooks are installed, as
     * in a full-RELRO module; the lazy case is libapr's, and the walk
     * does not care which (vt_got.c never keeps a slot's value). */
    target_handle = dlopen(vt_hook_target_path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(target_handle != NULL, "dlopen %s: %s",
                  vt_hook_target_path, dlerror());
    TGT_SYM(poll, "target_poll");
    TGT_SYM(select, "target_select");
    TGT_SYM(epoll_wait, "target_epoll_wait");
    TGT_SYM(connect, "target_connect");
    TGT_SYM(accept, "target_accept");
    TGT_SYM(accept4, "target_accept4");
    TGT_SYM(read, "target_read");
    TGT_SYM(write, "target_write");
    TGT_SYM(writev, "target_writev");
    TGT_SYM(sendfile, "target_sendfile");
    TGT_SYM(nanosleep, "target_nanosleep");
    TGT_SYM(usleep, "target_usleep");
    TGT_SYM(clock_nanosleep, "target_clock_nanosleep");
    TGT_SYM(mutex_lock, "target_mutex_lock");
    TGT_SYM(mutex_unlock, "target_mutex_unlock");
    TGT_SYM(cond_wait, "target_cond_wait");
    TGT_SYM(cond_timedwait, "target_cond_timedwait");
    TGT_SYM(cond_signal, "target_cond_signal");
    TGT_SYM(cond_broadcast, "target_cond_broadcast");
    TGT_SYM(getaddrinfo, "target_getaddrinfo");
    TGT_SYM(dlopen, "target_dlopen");
}

void vt_hook_test_setup(void)
{
    vt_hook_test_load();
    vt_hook_test_patched = 0;
    ck_assert_int_eq(vt_hook_install(vt_hook_test_filter, NULL,
                                     &vt_hook_test_patched), APR_SUCCESS);
    ck_assert_uint_gt(vt_hook_test_patched, 0);
}

void vt_hook_test_teardown(void)
{
    /* The target stays loaded (CK_FORK=no runs every test in one
     * process): only its slots go back. */
    vt_hook_uninstall();
}

void vt_hook_test_add(Suite *s, const TTest *test)
{
    vt_test_add_fixture(s, test, vt_hook_test_setup, vt_hook_test_teardown);
}

/* ------------------------------------------------------------------ */

typedef struct hook_call_t {
    int on;
    void (*fn)(void *);
    void *arg;
} hook_call_t;

static apr_status_t hook_fiber_main(void *arg)
{
    hook_call_t *c = arg;
    vt_hook_fiber_set(c->on);
    c->fn(c->arg);
    vt_hook_fiber_set(0);
    return APR_SUCCESS;
}

vt_fiber_t *vt_hook_test_go(vt_test_rt_t *t, int on, void (*fn)(void *),
                            void *arg, const char *label)
{
    hook_call_t *c = apr_palloc(t->pool, sizeof(*c));
    c->on = on;
    c->fn = fn;
    c->arg = arg;
    return vt_test_go(t, hook_fiber_main, c, label);
}

void vt_hook_test_run(vt_test_rt_t *t, int on, void (*fn)(void *),
                      void *arg)
{
    ck_assert_int_eq(vt_test_join(vt_hook_test_go(t, on, fn, arg,
                                                  "hook_run")),
                     APR_SUCCESS);
}

/* One body runs at a time (vt_hook_test_three_ways joins each). */
static _Atomic vt_hook_mode_e hook_mode;

vt_hook_mode_e vt_hook_test_mode(void)
{
    return atomic_load(&hook_mode);
}

void vt_hook_test_three_ways(void (*fn)(void *), void *arg)
{
    vt_test_rt_t t;

    vt_test_rt_start(&t, 1);
    atomic_store(&hook_mode, VT_HOOK_OFF_FIBER);
    fn(arg);
    atomic_store(&hook_mode, VT_HOOK_SWITCH_OFF);
    vt_hook_test_run(&t, 0, fn, arg);
    atomic_store(&hook_mode, VT_HOOK_SWITCH_ON);
    vt_hook_test_run(&t, 1, fn, arg);
    atomic_store(&hook_mode, VT_HOOK_OFF_FIBER);
    vt_test_rt_stop(&t);
}

/* ------------------------------------------------------------------ */

vt_hook_call_stats_t vt_hook_test_stats(vt_hook_call_e call)
{
    vt_hook_call_stats_t all[VT_HOOK_CALLS];
    vt_hook_stats(all);
    return all[call];
}

void vt_hook_test_pair(int sv[2])
{
    VT_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
}

int vt_hook_test_closed_fd(void)
{
    int fd = dup(0);
    VT_CHECK(fd >= 0);
    close(fd);
    return fd;
}

apr_int64_t vt_hook_test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct timespec vt_hook_test_abs(clockid_t clock, long ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ------------------------------------------------------------------ */

static void *rescue_main(void *arg)
{
    vt_hook_rescue_t *r = arg;
    struct timespec until = vt_hook_test_abs(CLOCK_REALTIME, r->ms);
    int fire;

    pthread_mutex_lock(&r->mu);
    while (!r->ended) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT) {
            break;
        }
    }
    fire = !r->ended;
    r->fired = fire;
    pthread_mutex_unlock(&r->mu);
    if (fire) {
        fprintf(stderr, "rescue: the test made no progress in %ld ms\n",
                r->ms);
        r->fn(r->arg);
    }
    return NULL;
}

void vt_hook_rescue_start(vt_hook_rescue_t *r, long ms, void (*fn)(void *),
                          void *arg)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->ms = ms;
    r->fn = fn;
    r->arg = arg;
    ck_assert_int_eq(pthread_create(&r->th, NULL, rescue_main, r), 0);
}

int vt_hook_rescue_end(vt_hook_rescue_t *r)
{
    int fired;
    pthread_mutex_lock(&r->mu);
    r->ended = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    fired = r->fired;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    return fired;
}

void vt_hook_rescue_shutdown(void *arg)
{
    shutdown(*(int *)arg, SHUT_RDWR);
}
