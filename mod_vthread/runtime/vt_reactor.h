/**
 * @file  vt_reactor.h
 * @brief A carrier's readiness poller (epoll on Linux) with a wake-up that
 *        any thread may trigger.
 *
 * Waits are one-shot: a waiter registers an fd, the carrier polls, and the
 * waiter removes the fd when it resumes, whatever woke it. Everything but
 * vt_reactor_wakeup() is called from the carrier's thread only. One
 * registration per fd per reactor at a time.
 *
 * epoll is used directly rather than through apr_pollset because waits are
 * on raw fds as well as apr_socket_t, and a wait must not allocate. A port
 * to another poller replaces this file only.
 */
#ifndef VT_REACTOR_H
#define VT_REACTOR_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_poll.h>
#include <apr_time.h>

/** One registered fd. */
typedef struct vt_io_wait_t {
    int fd;
    apr_int16_t events;   /**< APR_POLLIN / APR_POLLPRI / APR_POLLOUT asked */
    apr_int16_t revents;  /**< what was reported */
    void (*ready)(struct vt_io_wait_t *w); /**< called on readiness */
} vt_io_wait_t;

/** The reactor. */
typedef struct vt_reactor_t {
    int epfd;
    int wakefd;                /**< eventfd */
    _Atomic apr_uint32_t wake_pending; /**< a wake-up is already queued */
} vt_reactor_t;

/** @return APR_SUCCESS or errno */
apr_status_t vt_reactor_init(vt_reactor_t *r);

/** Close the reactor's fds. */
void vt_reactor_destroy(vt_reactor_t *r);

/**
 * Register @a w (fd, events, ready filled in).
 * @return APR_SUCCESS; APR_EBUSY if the fd is already registered here;
 *         another errno (e.g. EPERM for a regular file)
 */
apr_status_t vt_reactor_add(vt_reactor_t *r, vt_io_wait_t *w);

/** Unregister @a w. */
void vt_reactor_remove(vt_reactor_t *r, vt_io_wait_t *w);

/**
 * Wait for readiness or a wake-up, calling ready() for each ready fd.
 * @param timeout negative: until something happens; 0: poll only
 * @return APR_SUCCESS or errno (EINTR is retried by the caller)
 */
apr_status_t vt_reactor_poll(vt_reactor_t *r, apr_interval_time_t timeout);

/** Make a poll in progress (or the next one) return. Any thread. */
void vt_reactor_wakeup(vt_reactor_t *r);

#endif /* VT_REACTOR_H */
