/* Fibers: creation, start, join, cancel, defer. See vt_fiber.h. */
#include "vt_fiber.h"
#include "vt_carrier.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Least loaded by live fibers (created ones count at once); ties go to
 * the caller's own carrier, so a fiber's children stay local (no
 * cross-thread hand-off) when it is fair. */
static vt_carrier_t *pick_carrier(vt_runtime_t *rt)
{
    vt_carrier_t *self = vt_carrier_self();
    vt_carrier_t *best = (self && self->rt == rt) ? self : &rt->carriers[0];
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

apr_status_t vt_fiber_create(vt_fiber_t **out, vt_runtime_t *rt,
                             vthread_fn_t fn, void *arg, const char *label)
{
    vt_fiber_t *f;
    *out = NULL;
    if (!rt || !fn) {
        return APR_EINVAL;
    }
    if (atomic_load(&rt->stopping)) {
        return APR_ECONNABORTED;
    }
    if (!reserve_capacity(rt)) {
        return APR_EAGAIN;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        atomic_fetch_sub(&rt->live, 1);
        return APR_ENOMEM;
    }
    f->carrier = pick_carrier(rt);
    atomic_fetch_add(&f->carrier->live, 1);
    f->fn = fn;
    f->arg = arg;
    f->state = VT_FIBER_NEW;
    atomic_init(&f->refs, 2); /* the handle, and the fiber's own run */
    f->id = atomic_fetch_add(&rt->next_id, 1) + 1;
    pthread_mutex_init(&f->join_lock, NULL);
    if (label) {
        strncpy(f->label, label, sizeof(f->label) - 1);
    }
    *out = f;
    return APR_SUCCESS;
}

void vt_fiber_start(vt_fiber_t *f)
{
    if (!vt_carrier_schedule(f)) {
        /* The runtime stopped before it could run: end it unrun. */
        f->result = APR_ECONNABORTED;
        f->state = VT_FIBER_DONE;
        vt_fiber_finished(f);
    }
}

static void fiber_free(vt_fiber_t *f)
{
    pthread_mutex_destroy(&f->join_lock);
    free(f);
}

void vt_fiber_unref(vt_fiber_t *f)
{
    if (atomic_fetch_sub(&f->refs, 1) == 1) {
        fiber_free(f);
    }
}

void vt_fiber_discard(vt_fiber_t *f)
{
    vt_runtime_t *rt = f->carrier->rt;
    atomic_fetch_sub(&f->carrier->live, 1);
    atomic_fetch_sub(&rt->live, 1);
    fiber_free(f);
}

void vt_fiber_detach(vt_fiber_t *f)
{
    vt_fiber_unref(f);
}

void vt_fiber_finished(vt_fiber_t *f)
{
    vt_carrier_t *c = f->carrier;
    vt_waiter_t *resume = NULL;

    /* Counted out before joiners wake, so a joiner sees it gone. */
    atomic_fetch_sub(&c->live, 1);
    atomic_fetch_sub(&c->rt->live, 1);

    pthread_mutex_lock(&f->join_lock);
    f->done = 1;
    vt_waitq_claim_all(&f->joiners, APR_SUCCESS, &resume);
    pthread_mutex_unlock(&f->join_lock);
    vt_waiter_resume_list(resume);
    vt_fiber_unref(f);
}

apr_status_t vt_fiber_join(vt_fiber_t *f, apr_interval_time_t timeout,
                           apr_status_t *result)
{
    apr_status_t rv = APR_SUCCESS;
    if (!f) {
        return APR_EINVAL;
    }
    pthread_mutex_lock(&f->join_lock);
    if (!f->done) {
        vt_waiter_t w;
        vt_waiter_init(&w);
        if (w.fiber == f) {
            pthread_mutex_unlock(&f->join_lock);
            return APR_EINVAL; /* joining itself would never return */
        }
        rv = vt_waitq_wait(&f->joiners, &f->join_lock, &w, timeout, 0,
                           NULL, NULL);
        if (rv == APR_SUCCESS && !f->done) {
            rv = APR_EGENERAL; /* cannot happen: only the end wakes joiners */
        }
    }
    pthread_mutex_unlock(&f->join_lock);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (result) {
        *result = f->result;
    }
    vt_fiber_unref(f);
    return APR_SUCCESS;
}

void vt_fiber_cancel(vt_fiber_t *f)
{
    if (!f || atomic_exchange(&f->cancelled, 1)) {
        return;
    }
    if (vt_carrier_self() == f->carrier) {
        /* Only the fiber or its scheduler touch f->wait: safe here. */
        if (f->state == VT_FIBER_PARKED) {
            vt_fiber_cancel_parked(f);
        }
        return;
    }
    vt_carrier_post_cancel(f);
}

int vt_fiber_carrier_index(const vt_fiber_t *f)
{
    return f->carrier->index;
}

const char *vt_fiber_label(const vt_fiber_t *f)
{
    return f->label;
}

void vt_fiber_on_first_wait(vt_fiber_t *f, void (*fn)(void *), void *arg)
{
    f->first_wait = fn;
    f->first_wait_arg = arg;
}

void vt_fiber_set_label(vt_fiber_t *f, const char *label)
{
    /* The watchdog may read the old label meanwhile: at worst a report
     * names a mix of two requests; the buffer stays terminated. */
    strncpy(f->label, label ? label : "", sizeof(f->label) - 1);
    if (f->stack) {
        /* The overflow report reads the copy in the stack's header. */
        memcpy(f->stack->label, f->label, sizeof(f->stack->label));
    }
}

apr_interval_time_t vt_fiber_parked_time(const vt_fiber_t *f)
{
    return f->parked_total;
}

/* ---- public API ----------------------------------------------------- */

int vthread_on_fiber(void)
{
    return vt_fiber_current() != NULL;
}

static vt_runtime_t *caller_runtime(void)
{
    vt_carrier_t *c = vt_carrier_self();
    return c ? c->rt : vt_runtime_default();
}

apr_status_t vthread_spawn(vthread_t **thread, vthread_fn_t fn, void *arg)
{
    vt_runtime_t *rt = caller_runtime();
    vt_fiber_t *parent = vt_fiber_current();
    vt_fiber_t *f;
    apr_status_t rv;

    if (thread) {
        *thread = NULL;
    }
    if (!rt) {
        vt_log(NULL, VT_LOG_ERR, VT_MSG_MISUSE,
               "vthread_spawn: no fiber runtime runs in this process "
               "(is mod_vthread loaded and the child started?)");
        return APR_EINVAL;
    }
    rv = vt_fiber_create(&f, rt, fn, arg, parent ? parent->label : NULL);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    vt_fiber_start(f);
    if (thread) {
        *thread = f;
    }
    else {
        vt_fiber_detach(f);
    }
    return APR_SUCCESS;
}

apr_status_t vthread_join(vthread_t *thread, apr_interval_time_t timeout,
                          apr_status_t *result)
{
    return vt_fiber_join(thread, timeout, result);
}

void vthread_cancel(vthread_t *thread)
{
    vt_fiber_cancel(thread);
}

int vthread_cancelled(void)
{
    vt_fiber_t *f = vt_fiber_current();
    return f ? vt_fiber_is_cancelled(f) : 0;
}

apr_status_t vthread_defer(void (*fn)(void *arg), void *arg)
{
    vt_fiber_t *f = vt_fiber_current();
    vt_defer_t *d;
    if (!fn) {
        return APR_EINVAL;
    }
    if (!f) {
        vt_log(vt_runtime_default(), VT_LOG_WARNING, VT_MSG_MISUSE,
               "vthread_defer called off a fiber: a plain thread has no "
               "end to run it at; use a pool cleanup there");
        return APR_EINVAL;
    }
    d = malloc(sizeof(*d));
    if (!d) {
        return APR_ENOMEM;
    }
    d->fn = fn;
    d->arg = arg;
    d->next = f->defers;
    f->defers = d;
    return APR_SUCCESS;
}
