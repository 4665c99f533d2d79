/* Transparent hooks for the readiness waits: poll, select, epoll_wait.
 * On a fiber each asks the kernel once without waiting; if nothing is
 * ready it parks on the carrier's reactor (vt_fdwait.h) until an fd is,
 * or the caller's timeout passes, then asks again. */
#include "vt_hook.h"
#include "vt_hook_calls.h"

#include "vt_clock.h"
#include "vt_fdwait.h"
#include "vt_wait.h"

#include <limits.h>
#include <stdlib.h>

/* Park until one of @a fds may be ready or @a d passes. A wait the
 * reactor refuses blocks the carrier in the real poll instead, reported
 * as a pin. @return APR_SUCCESS or APR_TIMEUP */
static apr_status_t hook_poll_park(vt_fiber_t *f, vt_hook_call_e call,
                                   struct pollfd *fds, nfds_t n,
                                   const vt_clock_deadline_t *d,
                                   const void *site)
{
    apr_interval_time_t left = vt_clock_deadline_left(d);
    apr_status_t rv;

    if (left == 0) {
        return APR_TIMEUP;
    }
    rv = vt_fdwait_park(f, fds, n, left, VT_WAIT_UNCANCELLABLE);
    if (rv == APR_SUCCESS || rv == APR_TIMEUP) {
        return rv;
    }
    vt_hook_pinned(f, call, site, "the carrier's reactor refused the fds");
    left = vt_clock_deadline_left(d);
    vt_hook_real.poll(fds, n, left < 0 ? -1
                      : left / 1000 > INT_MAX ? INT_MAX : (int)(left / 1000));
    return APR_SUCCESS;
}

/* poll() for a fiber: @a timeout in microseconds, negative for none. */
static int hook_poll_fiber(vt_fiber_t *f, vt_hook_call_e call,
                           struct pollfd *fds, nfds_t n,
                           apr_interval_time_t timeout, const void *site)
{
    int saved = errno;
    vt_clock_deadline_t d;
    int rv = vt_hook_real.poll(fds, n, 0);

    if (rv != 0 || timeout == 0) {
        vt_hook_count(f, call, 0);
        return rv;
    }
    vt_hook_count(f, call, 1);
    vt_clock_deadline_start(&d, timeout);
    for (;;) {
        apr_status_t st = hook_poll_park(f, call, fds, n, &d, site);
        rv = vt_hook_real.poll(fds, n, 0);
        if (rv != 0) {
            /* Success leaves the caller's errno, as the real poll does:
             * errno now is whatever other fibers left while this one
             * was parked. */
            return (int)vt_hook_return(rv, rv > 0 ? saved : errno);
        }
        if (st == APR_TIMEUP) {
            return (int)vt_hook_return(0, saved);
        }
    }
}

int vt_hook_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    vt_fiber_t *f = vt_hook_fiber();

    if (!f) {
        return vt_hook_real.poll(fds, n, timeout);
    }
    return hook_poll_fiber(f, VT_HOOK_POLL, fds, n,
                           timeout < 0 ? -1 : (apr_interval_time_t)timeout
                                               * 1000,
                           __builtin_return_address(0));
}

/* What Linux's select counts as readable, writable, exceptional. */
#define HOOK_SELECT_IN  (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR)
#define HOOK_SELECT_OUT (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR)
#define HOOK_SELECT_EX  POLLPRI

/* Most selects on a fiber are apr_sleep's (no fd) or on a few fds. */
#define HOOK_SELECT_ON_STACK 8

static void hook_select_remaining(struct timeval *tv,
                                  const vt_clock_deadline_t *d)
{
    apr_interval_time_t left;

    if (!tv) {
        return;
    }
    left = vt_clock_deadline_left(d);
    tv->tv_sec = left / APR_USEC_PER_SEC;
    tv->tv_usec = left % APR_USEC_PER_SEC;
}

static int hook_select_fiber(vt_fiber_t *f, int nfds, fd_set *rd,
                             fd_set *wr, fd_set *ex, struct timeval *tv,
                             const void *site)
{
    struct pollfd local[HOOK_SELECT_ON_STACK], *p = local;
    apr_interval_time_t timeout = -1;
    vt_clock_deadline_t d;
    nfds_t n = 0;
    int rv = 0;

    if (tv) {
        timeout = (apr_interval_time_t)tv->tv_sec * APR_USEC_PER_SEC
                  + tv->tv_usec;
    }
    for (int fd = 0; fd < nfds; fd++) {
        n += (rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr))
             || (ex && FD_ISSET(fd, ex));
    }
    vt_clock_deadline_start(&d, timeout);
    if (n == 0) {
        /* A sleep (apr_sleep is select(0, NULL, NULL, NULL, &tv)). */
        int saved = errno;
        vt_waiter_t w;
        vt_hook_count(f, VT_HOOK_SELECT, timeout != 0);
        vt_wait_init(&w);
        vt_wait_park(&w, VT_PARK_TIMER, timeout, VT_WAIT_UNCANCELLABLE);
        hook_select_remaining(tv, &d);
        return (int)vt_hook_return(0, saved);
    }
    if (n > HOOK_SELECT_ON_STACK && !(p = calloc(n, sizeof(*p)))) {
        return vt_hook_real.select(nfds, rd, wr, ex, tv);
    }
    n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (rd && FD_ISSET(fd, rd) ? POLLIN : 0)
                   | (wr && FD_ISSET(fd, wr) ? POLLOUT : 0)
                   | (ex && FD_ISSET(fd, ex) ? POLLPRI : 0);
        if (ev) {
            p[n++] = (struct pollfd){ .fd = fd, .events = ev };
        }
    }
    rv = hook_poll_fiber(f, VT_HOOK_SELECT, p, n, timeout, site);
    if (rv > 0) {
        int err = 0;
        rv = 0;
        for (nfds_t i = 0; i < n; i++) {
            if (p[i].revents & POLLNVAL) {
                err = EBADF;
            }
        }
        if (err) {
            rv = (int)vt_hook_return(-1, EBADF);
        }
        else {
            if (rd) FD_ZERO(rd);
            if (wr) FD_ZERO(wr);
            if (ex) FD_ZERO(ex);
            for (nfds_t i = 0; i < n; i++) {
                short re = p[i].revents;
                if (rd && (p[i].events & POLLIN) && (re & HOOK_SELECT_IN)) {
                    FD_SET(p[i].fd, rd);
                    rv++;
                }
                if (wr && (p[i].events & POLLOUT)
                    && (re & HOOK_SELECT_OUT)) {
                    FD_SET(p[i].fd, wr);
                    rv++;
                }
                if (ex && (p[i].events & POLLPRI) && (re & HOOK_SELECT_EX)) {
                    FD_SET(p[i].fd, ex);
                    rv++;
                }
            }
        }
    }
    else if (rv == 0) {
        if (rd) FD_ZERO(rd);
        if (wr) FD_ZERO(wr);
        if (ex) FD_ZERO(ex);
    }
    if (rv >= 0) {
        hook_select_remaining(tv, &d);
    }
    if (p != local) {
        int err = errno;
        free(p);
        errno = err;
    }
    return rv;
}

int vt_hook_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex,
                   struct timeval *tv)
{
    vt_fiber_t *f = vt_hook_fiber();

    if (!f || nfds < 0 || nfds > FD_SETSIZE
        || (tv && (tv->tv_sec < 0 || tv->tv_usec < 0
                   || tv->tv_usec >= APR_USEC_PER_SEC))) {
        /* Off a fiber, or an argument the kernel refuses at once. */
        return vt_hook_real.select(nfds, rd, wr, ex, tv);
    }
    return hook_select_fiber(f, nfds, rd, wr, ex, tv,
                             __builtin_return_address(0));
}

int vt_hook_epoll_wait(int epfd, struct epoll_event *ev, int max,
                       int timeout)
{
    vt_fiber_t *f = vt_hook_fiber();
    struct pollfd p = { .fd = epfd, .events = POLLIN };
    vt_clock_deadline_t d;
    int saved, rv;

    if (!f) {
        return vt_hook_real.epoll_wait(epfd, ev, max, timeout);
    }
    saved = errno;
    rv = vt_hook_real.epoll_wait(epfd, ev, max, 0);
    if (rv != 0 || timeout == 0) {
        vt_hook_count(f, VT_HOOK_EPOLL_WAIT, 0);
        return rv;
    }
    /* An epoll fd is readable while it has events to report. */
    vt_hook_count(f, VT_HOOK_EPOLL_WAIT, 1);
    vt_clock_deadline_start(&d, timeout < 0 ? -1
                            : (apr_interval_time_t)timeout * 1000);
    for (;;) {
        apr_status_t st = hook_poll_park(f, VT_HOOK_EPOLL_WAIT, &p, 1, &d,
                                         __builtin_return_address(0));
        rv = vt_hook_real.epoll_wait(epfd, ev, max, 0);
        if (rv != 0) {
            /* As in hook_poll_fiber: success leaves the caller's errno. */
            return (int)vt_hook_return(rv, rv > 0 ? saved : errno);
        }
        if (st == APR_TIMEUP) {
            return (int)vt_hook_return(0, saved);
        }
    }
}
