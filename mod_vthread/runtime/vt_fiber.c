/* Fibers: the object and its context switch. See vt_fiber.h. */
#include "vt_fiber.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Thread_local vt_fiber_t *vt_fiber_tls_current
    __attribute__((tls_model("initial-exec")));

vt_fiber_t *vt_fiber_new(vthread_fn_t fn, void *arg, const char *label)
{
    vt_fiber_t *f = calloc(1, sizeof(*f));
    if (!f) {
        return NULL;
    }
    f->fn = fn;
    f->arg = arg;
    f->state = VT_FIBER_NEW;
    atomic_init(&f->refs, 2); /* the handle, and the fiber's own run */
    pthread_mutex_init(&f->join_lock, NULL);
    if (label) {
        strncpy(f->label, label, sizeof(f->label) - 1);
    }
    return f;
}

void vt_fiber_free(vt_fiber_t *f)
{
    pthread_mutex_destroy(&f->join_lock);
    free(f);
}

void vt_fiber_unref(vt_fiber_t *f)
{
    if (atomic_fetch_sub(&f->refs, 1) == 1) {
        vt_fiber_free(f);
    }
}

/* First code a fresh context runs: the body, then its defers, then back
 * to the scheduler for good. */
static void fiber_entry(vt_transfer_t t)
{
    vt_fiber_t *f = t.data;
    vt_fiber_sched_t *s = f->sched;
    vt_annotate_switch_finish(NULL, &s->stack, &s->stack_size);
    s->ctx = t.fctx;
    f->errno_loc = &errno;
    f->result = f->fn(f->arg);
    while (f->defers) {
        vt_defer_t *d = f->defers;
        f->defers = d->next;
        d->fn(d->arg);
        free(d);
    }
    if (vt_libstate_on || f->libstate) {
        vt_libstate_end(&f->libstate);
    }
    f->state = VT_FIBER_DONE;
    vt_annotate_switch_start(NULL, s->stack, s->stack_size);
    jump_fcontext(s->ctx, f);
    /* not reached: a finished context is never resumed */
}

void vt_fiber_prepare(vt_fiber_t *f, vt_stack_t *stack,
                      vt_fiber_sched_t *sched)
{
    f->stack = stack;
    f->sched = sched;
    stack->fiber_id = f->id;
    memcpy(stack->label, f->label, sizeof(stack->label));
    f->ctx = make_fcontext(stack->hi, (size_t)(stack->hi - stack->lo),
                           fiber_entry);
}

int vt_fiber_carrier_index(const vt_fiber_t *f)
{
    return f->carrier_index;
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
