/* The runtime: carriers, watchdog, process default. See vt_runtime.h. */
#include "vt_runtime.h"
#include "vt_carrier.h"
#include "vt_guard.h"
#include "vt_stack.h"
#include "vt_watchdog.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Report fibers that keep stop waiting this often. */
#define VT_STOP_REPORT_EVERY (5 * APR_USEC_PER_SEC)

static _Atomic(vt_runtime_t *) default_runtime;

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > VT_MAX_CARRIERS ? VT_MAX_CARRIERS : (int)n;
}

void vt_runtime_config_default(vt_runtime_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->carriers = 0;
    cfg->stack_size = VT_DEFAULT_STACK_SIZE;
    cfg->max_fibers = 0;
    cfg->stack_cache_hot = 16;
    cfg->pinned_warn = 100 * 1000;
}

apr_status_t vt_runtime_config_check(const vt_runtime_config_t *cfg,
                                     const char **why)
{
    apr_size_t rounded;
    if (cfg->carriers < 0 || cfg->carriers > VT_MAX_CARRIERS) {
        *why = "carriers must be 0 (one per CPU) to 256";
        return APR_EINVAL;
    }
    if (vt_stack_size_round(cfg->stack_size, &rounded) != APR_SUCCESS) {
        *why = "stack size must be 16K to 64M";
        return APR_EINVAL;
    }
    if (cfg->pinned_warn < 0) {
        *why = "pinned-fiber threshold must be 0 (off) or positive";
        return APR_EINVAL;
    }
    if (cfg->stack_cache_hot > 1000000) {
        *why = "stack cache must keep at most 1000000 stacks committed";
        return APR_EINVAL;
    }
    *why = NULL;
    return APR_SUCCESS;
}

static apr_status_t runtime_cleanup(void *data)
{
    return vt_runtime_stop(data);
}

/* Stop whatever was started, on a failed create or a normal stop. */
static void join_carriers(vt_runtime_t *rt, int started)
{
    apr_time_t next_report = vt_now() + VT_STOP_REPORT_EVERY;
    apr_uint32_t last_live = atomic_load(&rt->live);
    pthread_mutex_lock(&rt->exit_lock);
    while (rt->carriers_exited < started) {
        struct timespec until;
        until.tv_sec = next_report / APR_USEC_PER_SEC;
        until.tv_nsec = (long)(next_report % APR_USEC_PER_SEC) * 1000;
        if (pthread_cond_timedwait(&rt->exit_cond, &rt->exit_lock, &until)
            != 0 && vt_now() >= next_report) {
            /* Only when no fiber ended meanwhile: a long but moving stop
             * (100,000 fibers unwinding) is not stuck. */
            apr_uint32_t live = atomic_load(&rt->live);
            if (live == last_live) {
                vt_log(rt, VT_LOG_WARNING, VT_MSG_STOP_WAIT,
                       "stopping: %u fibers have not ended in %d s although "
                       "cancelled; a fiber that never parks (a CPU loop, a "
                       "blocking call) cannot be interrupted", (unsigned)live,
                       (int)(VT_STOP_REPORT_EVERY / APR_USEC_PER_SEC));
            }
            last_live = live;
            next_report = vt_now() + VT_STOP_REPORT_EVERY;
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
                               const vt_runtime_config_t *cfg,
                               apr_pool_t *p)
{
    vt_runtime_t *rt;
    const char *why;
    apr_status_t rv;
    int initialised = 0, started = 0;
    pthread_condattr_t attr;

    *out = NULL;
    if (vt_runtime_config_check(cfg, &why) != APR_SUCCESS) {
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
        rv = vt_carrier_init(&rt->carriers[initialised], rt, initialised);
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
        rv = vt_watchdog_start(&rt->watchdog, rt);
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
        vt_log(rt, VT_LOG_ERR, VT_MSG_THREAD,
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

apr_status_t vt_runtime_carrier_stats(const vt_runtime_t *rt, int index,
                                      vt_carrier_stats_t *out)
{
    const vt_carrier_t *c;
    if (!rt || !rt->carriers || index < 0 || index >= rt->ncarriers) {
        return APR_EINVAL;
    }
    c = &rt->carriers[index];
#define VT_READ(field) atomic_load_explicit(&((vt_carrier_t *)c)->field, \
                                            memory_order_relaxed)
    out->live = VT_READ(live);
    out->runnable = VT_READ(runnable);
    out->parked_timer = VT_READ(parked[VT_PARK_TIMER]);
    out->parked_io = VT_READ(parked[VT_PARK_IO]);
    out->parked_sync = VT_READ(parked[VT_PARK_SYNC]);
    out->switches = VT_READ(switches);
    out->started = VT_READ(started);
    out->stacks_cached = VT_READ(stacks_cached);
    out->stacks_cached_bytes = VT_READ(stacks_hot_bytes);
    out->pinned = VT_READ(pinned);
#undef VT_READ
    return APR_SUCCESS;
}
