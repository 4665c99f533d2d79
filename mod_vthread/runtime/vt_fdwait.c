/* Parking on several fds at once: see vt_fdwait.h. */
#include "vt_fdwait.h"

#include "vt_carrier.h"
#include "vt_reactor.h"
#include "vt_wait.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One fd's registration; every entry of a wait shares one waiter. */
typedef struct fdwait_entry_t {
    vt_io_wait_t io;
    vt_waiter_t *w;
    int added;
    int dup;            /* io.fd is our dup of the caller's fd */
} fdwait_entry_t;

/* Most waits are on one or two fds: those need no allocation. */
#define FDWAIT_ON_STACK 4

static void fdwait_ready(vt_io_wait_t *io)
{
    fdwait_entry_t *e =
        (fdwait_entry_t *)((char *)io - offsetof(fdwait_entry_t, io));
    if (vt_waitq_claim(e->w, APR_SUCCESS)) {
        vt_wait_resume(e->w);
    }
}

/* Register one fd. @return APR_SUCCESS, APR_EOF when the fd counts as
 * ready at once (the reactor refuses it), or an errno. */
static apr_status_t fdwait_add(vt_reactor_t *r, fdwait_entry_t *e,
                               const struct pollfd *p, vt_waiter_t *w)
{
    apr_status_t rv;

    e->w = w;
    e->io.fd = p->fd;
    e->io.events = 0;
    if (p->events & (POLLIN | POLLRDNORM)) {
        e->io.events |= APR_POLLIN;
    }
    if (p->events & POLLPRI) {
        e->io.events |= APR_POLLPRI;
    }
    if (p->events & (POLLOUT | POLLWRNORM)) {
        e->io.events |= APR_POLLOUT;
    }
    e->io.ready = fdwait_ready;
    rv = vt_reactor_add(r, &e->io);
    if (rv == APR_EBUSY) {
        /* Another wait on this carrier watches the same fd: epoll keys
         * its set on (fd, open file), so a dup of it may join. */
        e->io.fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
        if (e->io.fd < 0) {
            return errno;
        }
        e->dup = 1;
        rv = vt_reactor_add(r, &e->io);
    }
    if (rv == EPERM) {
        rv = APR_EOF;  /* a regular file or a directory: always ready */
    }
    e->added = rv == APR_SUCCESS;
    return rv;
}

static void fdwait_remove(vt_reactor_t *r, fdwait_entry_t *e)
{
    if (e->added) {
        vt_reactor_remove(r, &e->io);
    }
    if (e->dup) {
        close(e->io.fd);
    }
}

apr_status_t vt_fdwait_park(vt_fiber_t *f, const struct pollfd *fds,
                            apr_size_t n, apr_interval_time_t timeout,
                            int flags)
{
    vt_reactor_t *r = &f->carrier->reactor;
    fdwait_entry_t local[FDWAIT_ON_STACK];
    fdwait_entry_t *e = local;
    vt_waiter_t w;
    apr_status_t rv = APR_SUCCESS;
    apr_size_t i;

    if (!(flags & VT_WAIT_UNCANCELLABLE) && vt_fiber_is_cancelled(f)) {
        return APR_ECONNABORTED;
    }
    if (n > FDWAIT_ON_STACK) {
        e = calloc(n, sizeof(*e));
        if (!e) {
            return APR_ENOMEM;
        }
    }
    else {
        memset(local, 0, sizeof(local));
    }
    vt_wait_init(&w);
    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        if (fds[i].fd >= 0) {
            rv = fdwait_add(r, &e[i], &fds[i], &w);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = vt_wait_park(&w, VT_PARK_IO, timeout, flags);
    }
    else if (rv == APR_EOF) {
        rv = APR_SUCCESS;
    }
    for (i = 0; i < n; i++) {
        fdwait_remove(r, &e[i]);
    }
    /* A readiness report that came after the park ended lost its claim
     * and touched nothing; the registrations are gone now, so none can
     * come later. A wait that never parked must still be claimed, so
     * no late report resumes it. */
    vt_waitq_claim(&w, rv);
    if (e != local) {
        free(e);
    }
    return rv;
}
