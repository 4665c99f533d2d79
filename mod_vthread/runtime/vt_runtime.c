/* The runtime: carriers, watchdog, process default, and the account of
 * its fibers. See vt_runtime.h. */
#include "vt_runtime.h"
#include "vt_clock.h"
#include "vt_guard.h"
#include "vt_log.h"
#include "vt_stack.h"
#include "vt_wait.h"
#include "vt_watchdog.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Report fibers that keep stop waiting this often. */
#define VT_STOP_REPORT_EVERY (5 * APR_USEC_PER_SEC)

struct vt_runtime_t {
    vt_config_t cfg;
    apr_pool_t *pool;
    int ncarriers;
    vt_carrier_t *carriers;
    _Atomic apr_uint32_t live;     /**< fibers created and not ended */
    _Atomic apr_uint64_t next_id;
    _Atomic int stopping;
    int stopped;
    pthread_mutex_t exit_lock;     /**< carriers_exited, with exit_cond */
    pthread_cond_t exit_cond;
    int carriers_exited;
    vt_watchdog_t *watchdog;
};

static _Atomic(vt_runtime_t *) default_runtime;

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > VT_MAX_CARRIERS ? VT_MAX_CARRIERS : (int)n;
}

/* ---- what the carriers tell the runtime (vt_carrier_hooks_t) ------- */

void vt_runtime_fiber_ended(vt_fiber_t *f)
{
    vt_runtime_t *rt = f->carrier->owner;

    /* Counted out before joiners wake, so a joiner sees it gone. */
    atomic_fetch_sub(&f->carrier->live, 1);
    atomic_fetch_sub(&rt->live, 1);
    vt_wait_join_release(f);
    vt_fiber_unref(f);
}

static void carrier_exited(vt_carrier_t *c)
{
    vt_runtime_t *rt = c->owner;
    pthread_mutex_lock(&rt->exit_lock);
    rt->carriers_exited++;
    pthread_cond_broadcast(&rt->exit_cond);
    pthread_mutex_unlock(&rt->exit_lock);
}

static const vt_carrier_hooks_t carrier_hooks = {
    vt_runtime_fiber_ended,
    vt_wait_cancel_parked,
    carrier_exited
};

static apr_status_t runtime_cleanup(void *data)
{
    return vt_runtime_stop(data);
}

/* Stop whatever was started, on a failed create or a normal stop. */
static void join_carriers(vt_runtime_t *rt, int started)
{
    apr_time_t next_report = vt_clock_now() + VT_STOP_REPORT_EVERY;
    apr_uint32_t last_live = atomic_load(&rt->live);
    pthread_mutex_lock(&rt->exit_lock);
    while (rt->carriers_exited < started) {
        struct timespec until;
        until.tv_sec = next_report / APR_USEC_PER_SEC;
        until.tv_nsec = (long)(next_report % APR_USEC_PER_SEC) * 1000;
        if (pthread_cond_timedwait(&rt->exit_cond, &rt->exit_lock, &until)
            != 0 && vt_clock_now() >= next_report) {
            /* Only when no fiber ended meanwhile: a long but moving stop
             * (100,000 fibers unwinding) is not stuck. */
            apr_uint32_t live = atomic_load(&rt->live);
            if (live == last_live) {
                vt_log(&rt->cfg, VT_LOG_WARNING, VT_MSG_STOP_WAIT,
                       "stopping: %u fibers have not ended in %d s although "
                       "cancelled; a fiber that never parks (a CPU loop, a "
                       "blocking call) cannot be interrupted", (unsigned)live,
                       (int)(VT_STOP_REPORT_EVERY / APR_USEC_PER_SEC));
            }
            last_live = live;
            next_report = vt_clock_now() + VT_STOP_REPORT_EVERY;
        }
    }
    pthread_mutex_unlock(&rt->exit_lock);
    for (int i = 0; i < started; i++) {
        apr_status_t rv;
        apr_thread_join(&rv, rt->carriers[i].thread);
    }
}

static void release_runtime(vt_runtime_t *rt, int initialised)
{
    for (int i = 0; i < initialised; i++) {
        vt_carrier_destroy(&rt->carriers[i]);
    }
    pthread_cond_destroy(&rt->exit_cond);
    pthread_mutex_destroy(&rt->exit_lock);
    free(rt->carriers);
    rt->carriers = NULL;
}

apr_status_t vt_runtime_create(vt_runtime_t **out,
                               const vt_config_t *cfg,
                               apr_pool_t *p)
{
    vt_runtime_t *rt;
    const char *why;
    apr_status_t rv;
    int initialised = 0, started = 0;
    pthread_condattr_t attr;

    *out = NULL;
    if (vt_config_check(cfg, &why) != APR_SUCCESS) {
        if (cfg->log) {
            cfg->log(cfg->log_baton, VT_LOG_ERR, VT_MSG_CONFIG, why);
        }
        else {
            vt_log(NULL, VT_LOG_ERR, VT_MSG_CONFIG,
                   "runtime not started: %s", why);
        }
        return APR_EINVAL;
    }
    rt = apr_pcalloc(p, sizeof(*rt));
    rt->cfg = *cfg;
    rt->pool = p;
    vt_stack_size_round(cfg->stack_size, &rt->cfg.stack_size);
    if (!rt->cfg.thread_create) {
        rt->cfg.thread_create = apr_thread_create;
    }
    rt->ncarriers = cfg->carriers ? cfg->carriers : online_cpus();
    pthread_mutex_init(&rt->exit_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->exit_cond, &attr);
    pthread_condattr_destroy(&attr);
    rt->carriers = calloc((size_t)rt->ncarriers, sizeof(vt_carrier_t));
    if (!rt->carriers) {
        release_runtime(rt, 0);
        return APR_ENOMEM;
    }
    vt_guard_install();
    for (; initialised < rt->ncarriers; initialised++) {
        rv = vt_carrier_init(&rt->carriers[initialised], initialised, rt,
                             &rt->cfg, &rt->stopping, &carrier_hooks);
        if (rv != APR_SUCCESS) {
            goto fail;
        }
    }
    for (; started < rt->ncarriers; started++) {
        vt_carrier_t *c = &rt->carriers[started];
        rv = rt->cfg.thread_create(&c->thread, NULL, vt_carrier_main, c, p);
        if (rv != APR_SUCCESS) {
            goto fail;
        }
    }
    if (rt->cfg.pinned_warn > 0) {
        rv = vt_watchdog_start(&rt->watchdog, rt->carriers, rt->ncarriers,
                               &rt->cfg, p);
        if (rv != APR_SUCCESS) {
            goto fail;
        }
    }
    vt_runtime_t *none = NULL;
    atomic_compare_exchange_strong(&default_runtime, &none, rt);
    apr_pool_cleanup_register(p, rt, runtime_cleanup, apr_pool_cleanup_null);
    *out = rt;
    return APR_SUCCESS;

fail:
    {
        char err[120];
        vt_log(&rt->cfg, VT_LOG_ERR, VT_MSG_THREAD,
               "runtime not started: %s", apr_strerror(rv, err, sizeof(err)));
    }
    atomic_store(&rt->stopping, 1);
    for (int i = 0; i < started; i++) {
        vt_carrier_notify(&rt->carriers[i]);
    }
    join_carriers(rt, started);
    release_runtime(rt, initialised);
    return rv;
}

apr_status_t vt_runtime_stop(vt_runtime_t *rt)
{
    if (!rt || rt->stopped) {
        return APR_SUCCESS;
    }
    rt->stopped = 1;
    vt_runtime_t *self = rt;
    atomic_compare_exchange_strong(&default_runtime, &self, NULL);
    atomic_store(&rt->stopping, 1);
    for (int i = 0; i < rt->ncarriers; i++) {
        vt_carrier_notify(&rt->carriers[i]);
    }
    join_carriers(rt, rt->ncarriers);
    vt_watchdog_stop(rt->watchdog);
    rt->watchdog = NULL;
    release_runtime(rt, rt->ncarriers);
    apr_pool_cleanup_kill(rt->pool, rt, runtime_cleanup);
    return APR_SUCCESS;
}

vt_runtime_t *vt_runtime_default(void)
{
    return atomic_load(&default_runtime);
}

int vt_runtime_carriers(const vt_runtime_t *rt)
{
    return rt->ncarriers;
}

apr_uint32_t vt_runtime_live(const vt_runtime_t *rt)
{
    return atomic_load(&((vt_runtime_t *)rt)->live);
}

vt_runtime_t *vt_runtime_of_caller(void)
{
    vt_carrier_t *c = vt_carrier_self();
    return c ? c->owner : vt_runtime_default();
}

const vt_config_t *vt_runtime_config(const vt_runtime_t *rt)
{
    return rt ? &rt->cfg : NULL;
}

apr_status_t vt_runtime_carrier_stats(const vt_runtime_t *rt, int index,
                                      vt_carrier_stats_t *out)
{
    if (!rt || !rt->carriers || index < 0 || index >= rt->ncarriers) {
        return APR_EINVAL;
    }
    vt_carrier_stats(&rt->carriers[index], out);
    return APR_SUCCESS;
}

/* ---- the account of fibers ------------------------------------------ */

/* Least loaded by live fibers (created ones count at once); ties go to
 * the caller's own carrier, so a fiber's children stay local (no
 * cross-thread hand-off) when it is fair. */
static vt_carrier_t *pick_carrier(vt_runtime_t *rt)
{
    vt_carrier_t *self = vt_carrier_self();
    vt_carrier_t *best = (self && self->owner == rt) ? self
                                                     : &rt->carriers[0];
    apr_uint32_t best_load = atomic_load_explicit(&best->live,
                                                  memory_order_relaxed);
    for (int i = 0; i < rt->ncarriers && best_load > 0; i++) {
        vt_carrier_t *c = &rt->carriers[i];
        apr_uint32_t load = atomic_load_explicit(&c->live,
                                                 memory_order_relaxed);
        if (load < best_load) {
            best = c;
            best_load = load;
        }
    }
    return best;
}

static int reserve_capacity(vt_runtime_t *rt)
{
    apr_uint32_t max = rt->cfg.max_fibers;
    apr_uint32_t live = atomic_load(&rt->live);
    do {
        if (max && live >= max) {
            return 0;
        }
    } while (!atomic_compare_exchange_weak(&rt->live, &live, live + 1));
    return 1;
}

apr_status_t vt_runtime_admit(vt_runtime_t *rt, vt_fiber_t **out,
                              vthread_fn_t fn, void *arg, const char *label)
{
    vt_fiber_t *f;
    *out = NULL;
    if (atomic_load(&rt->stopping)) {
        return APR_ECONNABORTED;
    }
    /* Capacity before memory: a refusal at max_fibers allocates nothing. */
    if (!reserve_capacity(rt)) {
        return APR_EAGAIN;
    }
    f = vt_fiber_new(fn, arg, label);
    if (!f) {
        atomic_fetch_sub(&rt->live, 1);
        return APR_ENOMEM;
    }
    f->carrier = pick_carrier(rt);
    f->carrier_index = f->carrier->index;
    f->stopping = &rt->stopping;
    atomic_fetch_add(&f->carrier->live, 1);
    f->id = atomic_fetch_add(&rt->next_id, 1) + 1;
    *out = f;
    return APR_SUCCESS;
}

void vt_runtime_unadmit(vt_fiber_t *f)
{
    vt_runtime_t *rt = f->carrier->owner;
    atomic_fetch_sub(&f->carrier->live, 1);
    atomic_fetch_sub(&rt->live, 1);
}
