/* Carrier threads: the scheduler loop. See vt_carrier.h. */
#include "vt_carrier.h"
#include "vt_clock.h"
#include "vt_guard.h"
#include "vt_log.h"
#include "vt_thread_name.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

/* While fibers are runnable the carrier still polls its reactor, expires
 * timers and reads its inbox at least this often (microseconds): that
 * bounds the delay a busy run queue adds to I/O and wake-ups, while fibers
 * that only yield to each other make no syscall. The clock is read every
 * VT_RUNS_PER_CLOCK runs. */
#define VT_POLL_INTERVAL 50
#define VT_RUNS_PER_CLOCK 32

/* How often released stacks beyond the hot watermark give back their
 * pages: RSS follows the live fiber count this closely. A trim waits
 * while fibers keep ending (a wave of answers: its madvise would slow
 * the wave with TLB shoot-downs), for at most VT_TRIM_MAX_DEFER. */
#define VT_TRIM_INTERVAL (250 * 1000)
#define VT_TRIM_MAX_DEFER (2 * 1000 * 1000)
/* Cold stacks unmapped per tick at most: each munmap is a TLB shoot-down
 * (40-140 us on a busy VM), and the fibers of this carrier wait for it;
 * 64 per 250 ms gives back a 10,000-fiber burst in seconds. */
#define VT_UNMAP_PER_TICK 64

/* initial-exec: in mod_vthread.so a global-dynamic TLS read is a call to
 * __tls_get_addr on every API entry; 8 bytes of static TLS avoid it. */
static _Thread_local vt_carrier_t *tls_carrier
    __attribute__((tls_model("initial-exec")));

vt_carrier_t *vt_carrier_self(void)
{
    return tls_carrier;
}

apr_status_t vt_carrier_init(vt_carrier_t *c, int index, void *owner,
                             const vt_config_t *cfg,
                             const _Atomic int *stopping,
                             const vt_carrier_hooks_t *hooks)
{
    apr_status_t rv;
    memset(c, 0, sizeof(*c));
    c->owner = owner;
    c->cfg = cfg;
    c->stopping = stopping;
    c->hooks = hooks;
    c->index = index;
    rv = vt_reactor_init(&c->reactor);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    vt_timer_heap_init(&c->timers);
    vt_stack_cache_init(&c->stacks, cfg->stack_size, cfg->stack_cache_hot);
    pthread_mutex_init(&c->inbox_lock, NULL);
    return APR_SUCCESS;
}

void vt_carrier_destroy(vt_carrier_t *c)
{
    vt_stack_cache_destroy(&c->stacks);
    vt_timer_heap_destroy(&c->timers);
    vt_reactor_destroy(&c->reactor);
    pthread_mutex_destroy(&c->inbox_lock);
}

static int fiber_admit(vt_carrier_t *c, vt_fiber_t *f);

static void runq_push(vt_carrier_t *c, vt_fiber_t *f)
{
    f->state = VT_FIBER_READY;
    f->next = NULL;
    if (c->runq_tail) {
        c->runq_tail->next = f;
    }
    else {
        c->runq_head = f;
    }
    c->runq_tail = f;
}

static vt_fiber_t *runq_pop(vt_carrier_t *c)
{
    vt_fiber_t *f = c->runq_head;
    if (f) {
        c->runq_head = f->next;
        if (!c->runq_head) {
            c->runq_tail = NULL;
        }
        f->next = NULL;
    }
    return f;
}

/* Here rather than beside vthread_sleep so the whole path inlines: it is
 * the hottest call a CPU-bound handler makes. */
apr_status_t vthread_yield(void)
{
    vt_fiber_t *f = vt_fiber_current();
    if (!f) {
        apr_thread_yield();
        return APR_SUCCESS;
    }
    vt_fiber_first_wait(f);
    runq_push(f->carrier, f); /* still runnable: no counter changes */
    vt_fiber_switch_out(f);
    return vt_fiber_is_cancelled(f) ? APR_ECONNABORTED : APR_SUCCESS;
}

void vt_carrier_stats(const vt_carrier_t *c, vt_carrier_stats_t *out)
{
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
}

void vt_carrier_notify(vt_carrier_t *c)
{
    vt_reactor_wakeup(&c->reactor);
}

int vt_carrier_schedule(vt_fiber_t *f)
{
    vt_carrier_t *c = f->carrier;
    if (tls_carrier == c) {
        /* On its own carrier's thread (a timer, the reactor, a sibling
         * fiber): straight to the run queue, which that thread owns. A
         * woken fiber is parked, as only one runs here at a time. Going
         * through the inbox would need a wake-up the carrier may never
         * get before it blocks in its poll. */
        if (f->state == VT_FIBER_NEW && !fiber_admit(c, f)) {
            return 1;
        }
        VT_COUNT_ADD(c->runnable, 1);
        runq_push(c, f);
        return 1;
    }
    pthread_mutex_lock(&c->inbox_lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->inbox_lock);
        return 0;
    }
    f->next = NULL;
    if (c->inbox_tail) {
        c->inbox_tail->next = f;
    }
    else {
        c->inbox_head = f;
    }
    c->inbox_tail = f;
    pthread_mutex_unlock(&c->inbox_lock);
    vt_reactor_wakeup(&c->reactor);
    return 1;
}

void vt_carrier_post_cancel(vt_fiber_t *f)
{
    vt_carrier_t *c = f->carrier;
    if (atomic_exchange(&f->cancel_queued, 1)) {
        return;
    }
    atomic_fetch_add(&f->refs, 1); /* held until the carrier has looked */
    pthread_mutex_lock(&c->inbox_lock);
    f->cancel_next = c->cancel_head;
    c->cancel_head = f;
    pthread_mutex_unlock(&c->inbox_lock);
    vt_reactor_wakeup(&c->reactor);
}

static void live_link(vt_carrier_t *c, vt_fiber_t *f)
{
    f->live_prev = NULL;
    f->live_next = c->live_head;
    if (c->live_head) {
        c->live_head->live_prev = f;
    }
    c->live_head = f;
    c->owned++;
}

static void live_unlink(vt_carrier_t *c, vt_fiber_t *f)
{
    if (f->live_prev) {
        f->live_prev->live_next = f->live_next;
    }
    else {
        c->live_head = f->live_next;
    }
    if (f->live_next) {
        f->live_next->live_prev = f->live_prev;
    }
    c->owned--;
}

static void publish_stack_stats(vt_carrier_t *c)
{
    atomic_store_explicit(&c->stacks_cached, c->stacks.nfree,
                          memory_order_relaxed);
    atomic_store_explicit(&c->stacks_hot_bytes,
                          vt_stack_cache_hot_bytes(&c->stacks),
                          memory_order_relaxed);
}

/* End a fiber that never got to run (it has no stack). */
static void end_unrun(vt_carrier_t *c, vt_fiber_t *f, apr_status_t why)
{
    f->stack = NULL;
    f->result = why;
    f->state = VT_FIBER_DONE;
    c->hooks->fiber_ended(f);
}

/* A fiber reaches its carrier for the first time: give it a stack. If
 * none can be mapped (vm.max_map_count, RLIMIT_AS), it waits for the
 * next stack a fiber of this carrier releases: a delay, not a lost
 * request. Only a stopping carrier ends it unrun.
 * @return 1 if it got a stack and may be queued to run */
static int fiber_admit(vt_carrier_t *c, vt_fiber_t *f)
{
    apr_status_t rv = vt_stack_get(&c->stacks, &f->stack);
    if (rv != APR_SUCCESS) {
        if (c->stop_seen) {
            end_unrun(c, f, APR_ECONNABORTED);
            return 0;
        }
        if (!c->stackless_head) {
            char err[120];
            vt_log(c->cfg, VT_LOG_ERR, VT_MSG_STACK,
                   "carrier %d: cannot map a %lu-byte fiber stack for '%s':"
                   " %s; new fibers wait until a running one ends (each "
                   "fiber takes two memory mappings: check "
                   "vm.max_map_count, RLIMIT_AS and VThreadMaxFibers)",
                   c->index, (unsigned long)c->stacks.size, f->label,
                   apr_strerror(rv, err, sizeof(err)));
        }
        f->stack = NULL;
        f->next = NULL;
        if (c->stackless_tail) {
            c->stackless_tail->next = f;
        }
        else {
            c->stackless_head = f;
        }
        c->stackless_tail = f;
        return 0;
    }
    vt_fiber_prepare(f, f->stack, &c->sched);
    publish_stack_stats(c);
    live_link(c, f);
    VT_COUNT_ADD(c->started, 1);
    if (c->stop_seen) {
        atomic_store(&f->cancelled, 1);
    }
    return 1;
}

static void fiber_release(vt_carrier_t *c, vt_fiber_t *f)
{
    live_unlink(c, f);
    c->released_since_tick = 1;
    vt_stack_put(&c->stacks, f->stack);
    f->stack = NULL;
    publish_stack_stats(c);
    c->hooks->fiber_ended(f);
    /* A fiber waiting for a stack takes the one just released. */
    vt_fiber_t *waiting = c->stackless_head;
    if (waiting) {
        c->stackless_head = waiting->next;
        if (!c->stackless_head) {
            c->stackless_tail = NULL;
        }
        if (fiber_admit(c, waiting)) {
            VT_COUNT_ADD(c->runnable, 1);
            runq_push(c, waiting);
        }
    }
}

/* Trimming is pointless once stopping: every mapping is unmapped soon. */
static void trim_stacks(vt_carrier_t *c, apr_time_t now)
{
    apr_uint32_t changed;

    if (now < c->next_trim || c->stop_seen) {
        return;
    }
    c->next_trim = now + VT_TRIM_INTERVAL;
    if (c->released_since_tick) {
        c->released_since_tick = 0;
        if (!c->trim_deferred_since) {
            c->trim_deferred_since = now;
        }
        if (now - c->trim_deferred_since < VT_TRIM_MAX_DEFER) {
            return;
        }
    }
    c->trim_deferred_since = 0;
    changed = vt_stack_cache_trim(&c->stacks);
    /* Not while the watchdog may be reading a stack header: it sets the
     * flag before it loads running_stack (vt_watchdog.c), and this load
     * comes after every store of running_stack that retired a cold
     * stack. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&c->watch_reading, memory_order_relaxed)) {
        changed += vt_stack_cache_unmap_cold(&c->stacks, VT_UNMAP_PER_TICK);
    }
    if (changed) {
        publish_stack_stats(c);
    }
}

static void drain_inbox(vt_carrier_t *c)
{
    vt_fiber_t *list, *cancels;
    pthread_mutex_lock(&c->inbox_lock);
    list = c->inbox_head;
    cancels = c->cancel_head;
    c->inbox_head = c->inbox_tail = NULL;
    c->cancel_head = NULL;
    pthread_mutex_unlock(&c->inbox_lock);

    while (list) {
        vt_fiber_t *f = list;
        list = f->next;
        if (f->state == VT_FIBER_NEW && !fiber_admit(c, f)) {
            continue;
        }
        VT_COUNT_ADD(c->runnable, 1);
        runq_push(c, f);
    }
    while (cancels) {
        vt_fiber_t *f = cancels;
        cancels = f->cancel_next;
        atomic_store(&f->cancel_queued, 0);
        if (f->state == VT_FIBER_PARKED) {
            c->hooks->cancel_parked(f);
        }
        vt_fiber_unref(f);
    }
}

/* Switch to @a f until it parks, yields or ends. */
static void run_fiber(vt_carrier_t *c, vt_fiber_t *f)
{
    VT_COUNT_ADD(c->switches, 1);
    atomic_store_explicit(&c->running_stack, f->stack, memory_order_release);
    vt_fiber_resume(f);
    atomic_store_explicit(&c->running_stack, NULL, memory_order_release);
    if (f->state == VT_FIBER_DONE) {
        VT_COUNT_ADD(c->runnable, -1);
        fiber_release(c, f);
    }
}

/* Once stopping: cancel what lives here, including fibers that arrive
 * later (fiber_admit marks them). */
static void observe_stop(vt_carrier_t *c)
{
    c->stop_seen = 1;
    while (c->stackless_head) {
        vt_fiber_t *f = c->stackless_head;
        c->stackless_head = f->next;
        end_unrun(c, f, APR_ECONNABORTED);
    }
    c->stackless_tail = NULL;
    for (vt_fiber_t *f = c->live_head; f; f = f->live_next) {
        atomic_store(&f->cancelled, 1);
        if (f->state == VT_FIBER_PARKED) {
            c->hooks->cancel_parked(f);
        }
    }
}

/* Exit once stopping and nothing is left; closing under the inbox lock
 * means a fiber started later is refused, never stranded. */
static int close_if_idle(vt_carrier_t *c)
{
    if (!c->stop_seen || c->owned != 0 || c->runq_head) {
        return 0;
    }
    pthread_mutex_lock(&c->inbox_lock);
    c->closed = !c->inbox_head && !c->cancel_head;
    pthread_mutex_unlock(&c->inbox_lock);
    return c->closed;
}

static apr_interval_time_t poll_timeout(vt_carrier_t *c)
{
    vt_timer_t *next;
    apr_time_t wake_at = 0, now;
    if (c->runq_head) {
        return 0;
    }
    next = vt_timer_peek(&c->timers);
    if (next) {
        wake_at = next->when;
    }
    /* An idle carrier still wakes to give back stack pages and
     * mappings. */
    if ((c->stacks.nhot > c->stacks.hot_max
         || vt_stack_cache_cold_excess(&c->stacks) > 0) && !c->stop_seen
        && (!wake_at || c->next_trim < wake_at)) {
        wake_at = c->next_trim;
    }
    if (!wake_at) {
        return -1;
    }
    now = vt_clock_now();
    return wake_at > now ? wake_at - now : 0;
}

void *APR_THREAD_FUNC vt_carrier_main(apr_thread_t *thread, void *data)
{
    vt_carrier_t *c = data;
    (void)thread;
    tls_carrier = c;
    vt_thread_name("carrier", c->index);
    vt_guard_thread_enter(c->index, &c->running_stack);

    for (;;) {
        drain_inbox(c);
        if (atomic_load(c->stopping) && !c->stop_seen) {
            observe_stop(c);
        }
        apr_time_t poll_due = vt_clock_now() + VT_POLL_INTERVAL;
        for (unsigned runs = 1; c->runq_head; runs++) {
            run_fiber(c, runq_pop(c));
            if (runs % VT_RUNS_PER_CLOCK == 0 && vt_clock_now() >= poll_due) {
                break;
            }
        }
        if (close_if_idle(c)) {
            break;
        }
        apr_status_t rv = vt_reactor_poll(&c->reactor, poll_timeout(c));
        if (rv != APR_SUCCESS && rv != EINTR) {
            char err[120];
            vt_log(c->cfg, VT_LOG_ERR, VT_MSG_THREAD,
                   "carrier %d: epoll_wait failed: %s", c->index,
                   apr_strerror(rv, err, sizeof(err)));
        }
        apr_time_t now = vt_clock_now();
        vt_timer_expire(&c->timers, now);
        trim_stacks(c, now);
    }

    vt_guard_thread_leave();
    tls_carrier = NULL;
    c->hooks->exited(c);
    return NULL;
}
