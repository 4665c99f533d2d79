/* Deadline heap: see vt_timer.h. */
#include "vt_timer.h"

#include <stdlib.h>

void vt_timer_heap_init(vt_timer_heap_t *h)
{
    h->items = NULL;
    h->count = 0;
    h->capacity = 0;
    h->next_seq = 0;
}

void vt_timer_heap_destroy(vt_timer_heap_t *h)
{
    free(h->items);
    vt_timer_heap_init(h);
}

static int timer_before(const vt_timer_t *a, const vt_timer_t *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_place(vt_timer_heap_t *h, apr_size_t i, vt_timer_t *t)
{
    h->items[i] = t;
    t->index = i;
}

static void sift_up(vt_timer_heap_t *h, apr_size_t i)
{
    vt_timer_t *t = h->items[i];
    while (i > 0) {
        apr_size_t parent = (i - 1) / 2;
        if (!timer_before(t, h->items[parent])) {
            break;
        }
        heap_place(h, i, h->items[parent]);
        i = parent;
    }
    heap_place(h, i, t);
}

static void sift_down(vt_timer_heap_t *h, apr_size_t i)
{
    vt_timer_t *t = h->items[i];
    for (;;) {
        apr_size_t child = 2 * i + 1;
        if (child >= h->count) {
            break;
        }
        if (child + 1 < h->count
            && timer_before(h->items[child + 1], h->items[child])) {
            child++;
        }
        if (!timer_before(h->items[child], t)) {
            break;
        }
        heap_place(h, i, h->items[child]);
        i = child;
    }
    heap_place(h, i, t);
}

apr_status_t vt_timer_add(vt_timer_heap_t *h, vt_timer_t *t, apr_time_t when)
{
    if (h->count == h->capacity) {
        apr_size_t cap = h->capacity ? h->capacity * 2 : 64;
        vt_timer_t **items = realloc(h->items, cap * sizeof(*items));
        if (!items) {
            return APR_ENOMEM;
        }
        h->items = items;
        h->capacity = cap;
    }
    t->when = when;
    t->seq = h->next_seq++;
    heap_place(h, h->count++, t);
    sift_up(h, t->index);
    return APR_SUCCESS;
}

void vt_timer_remove(vt_timer_heap_t *h, vt_timer_t *t)
{
    apr_size_t i = t->index;
    if (i == VT_TIMER_IDLE || i >= h->count || h->items[i] != t) {
        return;
    }
    t->index = VT_TIMER_IDLE;
    h->count--;
    if (i == h->count) {
        return;
    }
    heap_place(h, i, h->items[h->count]);
    if (i > 0 && timer_before(h->items[i], h->items[(i - 1) / 2])) {
        sift_up(h, i);
    }
    else {
        sift_down(h, i);
    }
}

vt_timer_t *vt_timer_peek(const vt_timer_heap_t *h)
{
    return h->count ? h->items[0] : NULL;
}

apr_size_t vt_timer_expire(vt_timer_heap_t *h, apr_time_t now)
{
    apr_size_t fired = 0;
    vt_timer_t *t;
    while ((t = vt_timer_peek(h)) != NULL && t->when <= now) {
        vt_timer_remove(h, t);
        t->fire(t);
        fired++;
    }
    return fired;
}
