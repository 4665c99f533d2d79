/* What the transparent-mode hooks share: see vt_hook.h. */
#include "vt_hook.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

vt_hook_real_t vt_hook_real;

/* Counters per carrier index, written by that carrier (relaxed adds: two
 * runtimes in one process, as in the tests, may share an index). */
#define HOOK_MAX_CARRIERS 256

typedef struct hook_counts_t {
    _Atomic apr_uint64_t calls[VT_HOOK_CALLS];
    _Atomic apr_uint64_t parked[VT_HOOK_CALLS];
    _Atomic apr_uint64_t pinned[VT_HOOK_CALLS];
} __attribute__((aligned(64))) hook_counts_t;

static hook_counts_t hook_counts[HOOK_MAX_CARRIERS];

/* Call sites already reported (open addressing; a full table reports no
 * new site, the counters still count). */
#define HOOK_SITES 512
static _Atomic(const void *) hook_sites[HOOK_SITES];

static _Atomic(vt_hook_report_fn) hook_report;

static const char *const hook_names[VT_HOOK_CALLS] = {
    "poll", "select", "epoll_wait", "connect", "accept", "read", "write",
    "sendfile", "sleep", "mutex", "cond", "getaddrinfo"
};

#define HOOK_RESOLVE(field, sym) \
    (vt_hook_real.field = (__typeof__(vt_hook_real.field))dlsym(RTLD_DEFAULT, sym))

int vt_hook_resolve(void)
{
    int ok = 1;

    if (vt_hook_real.poll) {
        return 0;
    }
    ok &= HOOK_RESOLVE(select, "select") != NULL;
    ok &= HOOK_RESOLVE(epoll_wait, "epoll_wait") != NULL;
    ok &= HOOK_RESOLVE(connect, "connect") != NULL;
    ok &= HOOK_RESOLVE(accept, "accept") != NULL;
    ok &= HOOK_RESOLVE(accept4, "accept4") != NULL;
    ok &= HOOK_RESOLVE(read, "read") != NULL;
    ok &= HOOK_RESOLVE(write, "write") != NULL;
    ok &= HOOK_RESOLVE(writev, "writev") != NULL;
    ok &= HOOK_RESOLVE(sendfile, "sendfile") != NULL;
    ok &= HOOK_RESOLVE(nanosleep, "nanosleep") != NULL;
    ok &= HOOK_RESOLVE(usleep, "usleep") != NULL;
    ok &= HOOK_RESOLVE(clock_nanosleep, "clock_nanosleep") != NULL;
    ok &= HOOK_RESOLVE(mutex_lock, "pthread_mutex_lock") != NULL;
    ok &= HOOK_RESOLVE(mutex_trylock, "pthread_mutex_trylock") != NULL;
    ok &= HOOK_RESOLVE(mutex_unlock, "pthread_mutex_unlock") != NULL;
    ok &= HOOK_RESOLVE(cond_wait, "pthread_cond_wait") != NULL;
    ok &= HOOK_RESOLVE(cond_timedwait, "pthread_cond_timedwait") != NULL;
    ok &= HOOK_RESOLVE(cond_signal, "pthread_cond_signal") != NULL;
    ok &= HOOK_RESOLVE(cond_broadcast, "pthread_cond_broadcast") != NULL;
    ok &= HOOK_RESOLVE(getaddrinfo, "getaddrinfo") != NULL;
    /* poll last: it marks the table complete. */
    ok &= HOOK_RESOLVE(poll, "poll") != NULL;
    if (!ok) {
        vt_hook_real.poll = NULL;
        return -1;
    }
    return 0;
}

int vt_hook_fiber_set(int on)
{
    vt_fiber_t *f = vt_fiber_current();
    int was;

    if (!f) {
        return 0;
    }
    was = f->transparent;
    f->transparent = on;
    return was;
}

static hook_counts_t *hook_counts_of(const vt_fiber_t *f)
{
    unsigned i = (unsigned)f->carrier_index;
    return &hook_counts[i < HOOK_MAX_CARRIERS ? i : 0];
}

void vt_hook_count(const vt_fiber_t *f, vt_hook_call_e call, int parked)
{
    hook_counts_t *c = hook_counts_of(f);

    atomic_fetch_add_explicit(&c->calls[call], 1, memory_order_relaxed);
    if (parked) {
        atomic_fetch_add_explicit(&c->parked[call], 1, memory_order_relaxed);
    }
}

/* @return 1 the first time @a site is seen */
static int hook_site_new(const void *site)
{
    uintptr_t h = ((uintptr_t)site >> 4) * 0x9E3779B97F4A7C15ull;

    for (unsigned i = 0; i < HOOK_SITES; i++) {
        _Atomic(const void *) *slot = &hook_sites[(h + i) % HOOK_SITES];
        const void *seen = atomic_load(slot);
        if (seen == site) {
            return 0;
        }
        if (!seen && atomic_compare_exchange_strong(slot, &seen, site)) {
            return 1;
        }
        if (seen == site) {
            return 0;
        }
    }
    return 0;
}

void vt_hook_pinned(const vt_fiber_t *f, vt_hook_call_e call,
                    const void *site, const char *why)
{
    hook_counts_t *c = hook_counts_of(f);
    vt_hook_report_fn report;
    Dl_info info;
    const char *object = "?";

    atomic_fetch_add_explicit(&c->pinned[call], 1, memory_order_relaxed);
    if (!hook_site_new(site)) {
        return;
    }
    if (dladdr(site, &info) && info.dli_fname) {
        object = info.dli_fname;
    }
    report = atomic_load(&hook_report);
    if (report) {
        report(hook_names[call], object, site, why);
    }
    else {
        fprintf(stderr, "mod_vthread: %s from %s (%p) blocked its carrier: "
                "%s\n", hook_names[call], object, site, why);
    }
}

void vt_hook_set_report(vt_hook_report_fn fn)
{
    atomic_store(&hook_report, fn);
}

const char *vt_hook_call_name(vt_hook_call_e call)
{
    return (unsigned)call < VT_HOOK_CALLS ? hook_names[call] : "?";
}

void vt_hook_stats(vt_hook_call_stats_t *out)
{
    for (int k = 0; k < VT_HOOK_CALLS; k++) {
        out[k].calls = out[k].parked = out[k].pinned = 0;
        for (int i = 0; i < HOOK_MAX_CARRIERS; i++) {
            hook_counts_t *c = &hook_counts[i];
            out[k].calls += atomic_load_explicit(&c->calls[k],
                                                 memory_order_relaxed);
            out[k].parked += atomic_load_explicit(&c->parked[k],
                                                  memory_order_relaxed);
            out[k].pinned += atomic_load_explicit(&c->pinned[k],
                                                  memory_order_relaxed);
        }
    }
}
