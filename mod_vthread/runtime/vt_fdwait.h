/**
 * @file  vt_fdwait.h
 * @brief Park a fiber until one of several fds is ready, on its carrier's
 *        reactor: the wait under vthread_wait_fd() and the transparent
 *        hooks' poll, select and epoll_wait.
 */
#ifndef VT_FDWAIT_H
#define VT_FDWAIT_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_time.h>
#include <poll.h>

#include "vt_fiber.h"

/**
 * Park @a f until any of @a fds is ready for what it asks (POLLIN,
 * POLLOUT; errors and hang-ups always count), or @a timeout passes. The
 * revents of @a fds are not set: the caller asks the kernel afterwards.
 * An fd the reactor refuses (a regular file: EPERM) counts as ready, as
 * poll() reports it; an fd another wait on this carrier already watches
 * is watched through a dup of it. Negative fds are skipped.
 * @param timeout microseconds; negative waits until ready
 * @param flags 0, or VT_WAIT_UNCANCELLABLE (vt_wait.h)
 * @return APR_SUCCESS (something is ready, or may be), APR_TIMEUP,
 *         APR_ECONNABORTED (cancelled), or an errno from the reactor
 */
apr_status_t vt_fdwait_park(vt_fiber_t *f, const struct pollfd *fds,
                            apr_size_t n, apr_interval_time_t timeout,
                            int flags);

#endif /* VT_FDWAIT_H */
