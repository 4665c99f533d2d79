/* Waiters, their claim, and wait queues: see vt_waitq.h. */
#include "vt_waitq.h"

#include <stdatomic.h>
#include <stddef.h>

int vt_waitq_claim(vt_waiter_t *w, apr_status_t result)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&w->claimed, &expected, 1)) {
        return 0;
    }
    w->result = result;
    return 1;
}

void vt_waitq_push(vt_waitq_t *q, vt_waiter_t *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail) {
        q->tail->next = w;
    }
    else {
        q->head = w;
    }
    q->tail = w;
    w->linked = 1;
    q->count++;
}

void vt_waitq_unlink(vt_waitq_t *q, vt_waiter_t *w)
{
    if (!w->linked) {
        return;
    }
    if (w->prev) {
        w->prev->next = w->next;
    }
    else {
        q->head = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    else {
        q->tail = w->prev;
    }
    w->prev = w->next = NULL;
    w->linked = 0;
    q->count--;
}

vt_waiter_t *vt_waitq_claim_first(vt_waitq_t *q, apr_status_t result,
                                  vt_waiter_t **resume_list)
{
    vt_waiter_t *w;
    while ((w = q->head) != NULL) {
        vt_waitq_unlink(q, w);
        if (vt_waitq_claim(w, result)) {
            w->resume_next = *resume_list;
            *resume_list = w;
            return w;
        }
        /* Its timeout or cancel won: it unlinks itself, already done. */
    }
    return NULL;
}

apr_size_t vt_waitq_claim_all(vt_waitq_t *q, apr_status_t result,
                              vt_waiter_t **resume_list)
{
    apr_size_t n = 0;
    while (vt_waitq_claim_first(q, result, resume_list)) {
        n++;
    }
    return n;
}
