/* Bounded channel: a ring of pointers; senders wait while it is full,
 * receivers while it is empty. A wake only says "look again", so a woken
 * side loops until it succeeds, its deadline passes, or the channel
 * closes. */
#include "vt_clock.h"
#include "vt_wait.h"

#include <apr_pools.h>
#include "vthread.h"

struct vthread_chan_t {
    pthread_mutex_t lock;
    vt_waitq_t senders;
    vt_waitq_t receivers;
    void **ring;
    apr_size_t capacity;
    apr_size_t head;
    apr_size_t count;
    int closed;
};

static apr_status_t chan_cleanup(void *data)
{
    vthread_chan_t *ch = data;
    pthread_mutex_destroy(&ch->lock);
    return APR_SUCCESS;
}

apr_status_t vthread_chan_create(vthread_chan_t **out, apr_size_t capacity,
                                 apr_pool_t *p)
{
    vthread_chan_t *ch;
    *out = NULL;
    if (capacity == 0 || capacity > ((apr_size_t)1 << 30)) {
        return APR_EINVAL;
    }
    ch = apr_pcalloc(p, sizeof(*ch));
    if (!ch || !(ch->ring = apr_palloc(p, capacity * sizeof(void *)))) {
        return APR_ENOMEM;
    }
    ch->capacity = capacity;
    pthread_mutex_init(&ch->lock, NULL);
    apr_pool_cleanup_register(p, ch, chan_cleanup, apr_pool_cleanup_null);
    *out = ch;
    return APR_SUCCESS;
}

/* Wait on @a q with the time left; lock held on entry and return. */
static apr_status_t chan_wait(vthread_chan_t *ch, vt_waitq_t *q,
                              const vt_clock_deadline_t *d)
{
    vt_waiter_t w;
    vt_wait_init(&w);
    return vt_wait_queued(q, &ch->lock, &w, vt_clock_deadline_left(d), 0,
                         NULL, NULL);
}

static void wake_one(vt_waitq_t *q, vt_waiter_t **resume)
{
    vt_waitq_claim_first(q, APR_SUCCESS, resume);
}

apr_status_t vthread_chan_send(vthread_chan_t *ch, void *item,
                               apr_interval_time_t timeout)
{
    vt_waiter_t *resume = NULL;
    vt_clock_deadline_t d;
    apr_status_t rv = APR_SUCCESS;
    vt_clock_deadline_start(&d, timeout);
    pthread_mutex_lock(&ch->lock);
    for (;;) {
        if (ch->closed) {
            rv = APR_EPIPE;
            break;
        }
        if (ch->count < ch->capacity) {
            ch->ring[(ch->head + ch->count) % ch->capacity] = item;
            ch->count++;
            wake_one(&ch->receivers, &resume);
            break;
        }
        rv = chan_wait(ch, &ch->senders, &d);
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    pthread_mutex_unlock(&ch->lock);
    vt_wait_resume_list(resume);
    return rv;
}

apr_status_t vthread_chan_recv(vthread_chan_t *ch, void **item,
                               apr_interval_time_t timeout)
{
    vt_waiter_t *resume = NULL;
    vt_clock_deadline_t d;
    apr_status_t rv = APR_SUCCESS;
    vt_clock_deadline_start(&d, timeout);
    pthread_mutex_lock(&ch->lock);
    for (;;) {
        if (ch->count > 0) {
            *item = ch->ring[ch->head];
            ch->head = (ch->head + 1) % ch->capacity;
            ch->count--;
            wake_one(&ch->senders, &resume);
            break;
        }
        if (ch->closed) {
            rv = APR_EOF;
            break;
        }
        rv = chan_wait(ch, &ch->receivers, &d);
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    pthread_mutex_unlock(&ch->lock);
    vt_wait_resume_list(resume);
    return rv;
}

void vthread_chan_close(vthread_chan_t *ch)
{
    vt_waiter_t *resume = NULL;
    pthread_mutex_lock(&ch->lock);
    ch->closed = 1;
    vt_waitq_claim_all(&ch->senders, APR_SUCCESS, &resume);
    vt_waitq_claim_all(&ch->receivers, APR_SUCCESS, &resume);
    pthread_mutex_unlock(&ch->lock);
    vt_wait_resume_list(resume);
}
