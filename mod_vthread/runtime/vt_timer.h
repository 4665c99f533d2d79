/**
 * @file  vt_timer.h
 * @brief A binary min-heap of deadlines, one per carrier, used only from
 *        the carrier's thread.
 *
 * Timers are embedded in their owners (a park record on a fiber stack);
 * each remembers its heap index, so removal is O(log n).
 */
#ifndef VT_TIMER_H
#define VT_TIMER_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_time.h>

/** A deadline in a heap. */
typedef struct vt_timer_t {
    apr_time_t when;    /**< absolute deadline */
    apr_uint64_t seq;   /**< insertion order, breaks ties FIFO */
    apr_size_t index;   /**< position in the heap, or VT_TIMER_IDLE */
    void (*fire)(struct vt_timer_t *t); /**< called when it expires */
} vt_timer_t;

/** index of a timer that is in no heap. */
#define VT_TIMER_IDLE ((apr_size_t)-1)

/** The heap. */
typedef struct vt_timer_heap_t {
    vt_timer_t **items;
    apr_size_t count;
    apr_size_t capacity;
    apr_uint64_t next_seq;
} vt_timer_heap_t;

/** Prepare an empty heap. */
void vt_timer_heap_init(vt_timer_heap_t *h);

/** Free the heap's array (its timers are not touched). */
void vt_timer_heap_destroy(vt_timer_heap_t *h);

/**
 * Add @a t, which must be idle, with deadline @a when.
 * @return APR_SUCCESS or APR_ENOMEM
 */
apr_status_t vt_timer_add(vt_timer_heap_t *h, vt_timer_t *t, apr_time_t when);

/** Remove @a t if it is in the heap. */
void vt_timer_remove(vt_timer_heap_t *h, vt_timer_t *t);

/** The earliest timer, or NULL. */
vt_timer_t *vt_timer_peek(const vt_timer_heap_t *h);

/**
 * Remove and fire, in deadline order, every timer due at @a now.
 * @return how many fired
 */
apr_size_t vt_timer_expire(vt_timer_heap_t *h, apr_time_t now);

#endif /* VT_TIMER_H */
