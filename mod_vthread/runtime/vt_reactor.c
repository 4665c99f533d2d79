/* epoll reactor with an eventfd wake-up: see vt_reactor.h. */
#include "vt_reactor.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define VT_REACTOR_BATCH 128

apr_status_t vt_reactor_init(vt_reactor_t *r)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    r->wake_pending = 0;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        return errno;
    }
    r->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wakefd < 0) {
        apr_status_t rv = errno;
        close(r->epfd);
        return rv;
    }
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->wakefd, &ev) != 0) {
        apr_status_t rv = errno;
        close(r->wakefd);
        close(r->epfd);
        return rv;
    }
    return APR_SUCCESS;
}

void vt_reactor_destroy(vt_reactor_t *r)
{
    close(r->wakefd);
    close(r->epfd);
    r->wakefd = r->epfd = -1;
}

apr_status_t vt_reactor_add(vt_reactor_t *r, vt_io_wait_t *w)
{
    struct epoll_event ev = { .events = 0, .data.ptr = w };
    /* Only what was asked (errors and hang-ups always come): a peer's
     * half-close (RDHUP) reported to a wait for POLLOUT, or normal data to
     * a wait for POLLPRI, would wake it over and over, level-triggered,
     * with nothing it waits for ready. */
    if (w->events & APR_POLLIN) {
        ev.events |= EPOLLIN | EPOLLRDHUP;
    }
    if (w->events & APR_POLLPRI) {
        ev.events |= EPOLLPRI;
    }
    if (w->events & APR_POLLOUT) {
        ev.events |= EPOLLOUT;
    }
    w->revents = 0;
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0) {
        return errno == EEXIST ? APR_EBUSY : errno;
    }
    return APR_SUCCESS;
}

void vt_reactor_remove(vt_reactor_t *r, vt_io_wait_t *w)
{
    /* Fails harmlessly with EBADF/ENOENT if the fd was closed meanwhile:
     * closing the last reference already removed it from the set. */
    struct epoll_event ev = { 0 };
    epoll_ctl(r->epfd, EPOLL_CTL_DEL, w->fd, &ev);
}

static apr_int16_t revents_from_epoll(uint32_t e)
{
    apr_int16_t rv = 0;
    if (e & (EPOLLIN | EPOLLRDHUP)) {
        rv |= APR_POLLIN;
    }
    if (e & EPOLLOUT) {
        rv |= APR_POLLOUT;
    }
    if (e & EPOLLPRI) {
        rv |= APR_POLLPRI;
    }
    if (e & EPOLLERR) {
        rv |= APR_POLLERR;
    }
    if (e & EPOLLHUP) {
        rv |= APR_POLLHUP;
    }
    return rv;
}

apr_status_t vt_reactor_poll(vt_reactor_t *r, apr_interval_time_t timeout)
{
    struct epoll_event evs[VT_REACTOR_BATCH];
    int ms;
    if (timeout < 0) {
        ms = -1;
    }
    else {
        /* Round up: waking before the deadline would only spin. */
        apr_interval_time_t t = (timeout + 999) / 1000;
        ms = t > 0x7fffffff ? 0x7fffffff : (int)t;
    }
    int n = epoll_wait(r->epfd, evs, VT_REACTOR_BATCH, ms);
    if (n < 0) {
        return errno;
    }
    for (int i = 0; i < n; i++) {
        vt_io_wait_t *w = evs[i].data.ptr;
        if (!w) {
            uint64_t v;
            /* Consume, then clear: a wake-up that lands between the two
             * finds the flag still set and writes nothing, but its inbox
             * push happened before, and the caller drains the inbox
             * next. Clearing first would let a write be swallowed while
             * the flag stays set, and no later wake-up would ever write. */
            while (read(r->wakefd, &v, sizeof(v)) > 0) {
            }
            atomic_store(&r->wake_pending, 0);
            continue;
        }
        w->revents = revents_from_epoll(evs[i].events);
        w->ready(w);
    }
    return APR_SUCCESS;
}

void vt_reactor_wakeup(vt_reactor_t *r)
{
    if (atomic_exchange(&r->wake_pending, 1) == 0) {
        uint64_t one = 1;
        ssize_t n = write(r->wakefd, &one, sizeof(one));
        (void)n; /* EAGAIN means the counter is already non-zero: fine */
    }
}
