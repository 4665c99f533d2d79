/* Pinned-fiber watchdog: see vt_watchdog.h. */
#include "vt_watchdog.h"
#include "vt_carrier.h"
#include "vt_clock.h"
#include "vt_log.h"
#include "vt_thread_name.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct carrier_watch_t {
    apr_uint64_t seen_switches; /* value at the last sample */
    apr_time_t since;           /* when it last changed */
    apr_uint64_t reported_at;   /* switch count already reported */
} carrier_watch_t;

struct vt_watchdog_t {
    vt_carrier_t *carriers;
    int ncarriers;
    const vt_config_t *cfg;
    apr_thread_t *thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    carrier_watch_t *watch;
};

static void check_carrier(vt_watchdog_t *wd, vt_carrier_t *c,
                          carrier_watch_t *cw, apr_time_t now)
{
    apr_uint64_t sw = atomic_load_explicit(&c->switches,
                                           memory_order_acquire);
    vt_stack_t *st = atomic_load_explicit(&c->running_stack,
                                          memory_order_acquire);
    char label[sizeof(st->label)];
    apr_uint64_t id;

    if (sw != cw->seen_switches || !st) {
        cw->seen_switches = sw;
        cw->since = now;
        return;
    }
    if (cw->reported_at == sw || now - cw->since < wd->cfg->pinned_warn) {
        return;
    }
    /* The carrier unmaps no stack while the flag is up (vt_stack.h), and
     * a stack loaded after it went up is running or was until lately. If
     * the carrier switched while we copied, the copy may be torn: skip. */
    atomic_store_explicit(&c->watch_reading, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    st = atomic_load_explicit(&c->running_stack, memory_order_acquire);
    if (st) {
        memcpy(label, st->label, sizeof(label));
        label[sizeof(label) - 1] = '\0';
        id = st->fiber_id;
    }
    atomic_store_explicit(&c->watch_reading, 0, memory_order_release);
    if (!st
        || atomic_load_explicit(&c->switches, memory_order_acquire) != sw) {
        return;
    }
    cw->reported_at = sw;
    atomic_fetch_add(&c->pinned, 1);
    vt_log(wd->cfg, VT_LOG_WARNING, VT_MSG_PINNED,
           "fiber %llu '%s' has held carrier %d for %lld ms without "
           "yielding (VThreadPinnedWarn %lld ms); other fibers on that "
           "carrier are waiting", (unsigned long long)id, label, c->index,
           (long long)((now - cw->since) / 1000),
           (long long)(wd->cfg->pinned_warn / 1000));
}

static void *APR_THREAD_FUNC watchdog_main(apr_thread_t *thread, void *data)
{
    vt_watchdog_t *wd = data;
    apr_interval_time_t period = wd->cfg->pinned_warn / 4;
    (void)thread;
    vt_thread_name("watchdog", -1);
    if (period < 1000) {
        period = 1000;
    }
    if (period > 250000) {
        period = 250000;
    }
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        struct timespec until;
        apr_time_t at = vt_clock_now() + period;
        until.tv_sec = at / APR_USEC_PER_SEC;
        until.tv_nsec = (long)(at % APR_USEC_PER_SEC) * 1000;
        pthread_cond_timedwait(&wd->cond, &wd->lock, &until);
        if (wd->stop) {
            break;
        }
        apr_time_t now = vt_clock_now();
        for (int i = 0; i < wd->ncarriers; i++) {
            check_carrier(wd, &wd->carriers[i], &wd->watch[i], now);
        }
    }
    pthread_mutex_unlock(&wd->lock);
    return NULL;
}

apr_status_t vt_watchdog_start(vt_watchdog_t **out, vt_carrier_t *carriers,
                               int ncarriers, const vt_config_t *cfg,
                               apr_pool_t *p)
{
    vt_watchdog_t *wd = calloc(1, sizeof(*wd));
    pthread_condattr_t attr;
    apr_status_t rv;
    *out = NULL;
    if (!wd || !(wd->watch = calloc((size_t)ncarriers,
                                    sizeof(*wd->watch)))) {
        free(wd);
        return APR_ENOMEM;
    }
    wd->carriers = carriers;
    wd->ncarriers = ncarriers;
    wd->cfg = cfg;
    pthread_mutex_init(&wd->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wd->cond, &attr);
    pthread_condattr_destroy(&attr);
    rv = cfg->thread_create(&wd->thread, NULL, watchdog_main, wd, p);
    if (rv != APR_SUCCESS) {
        pthread_cond_destroy(&wd->cond);
        pthread_mutex_destroy(&wd->lock);
        free(wd->watch);
        free(wd);
        return rv;
    }
    *out = wd;
    return APR_SUCCESS;
}

void vt_watchdog_stop(vt_watchdog_t *wd)
{
    apr_status_t rv;
    if (!wd) {
        return;
    }
    pthread_mutex_lock(&wd->lock);
    wd->stop = 1;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    apr_thread_join(&rv, wd->thread);
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
    free(wd->watch);
    free(wd);
}
