/* Fiber-aware socket calls: try the call without blocking; on EAGAIN park
 * the fiber on its carrier's reactor until the fd is ready, then retry.
 * Off a fiber each call is the APR call it mirrors. */
#include "vt_carrier.h"
#include "vt_clock.h"
#include "vt_fdwait.h"

#include <apr_portable.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/uio.h>

static apr_status_t thread_wait_fd(int fd, apr_int16_t events,
                                   apr_interval_time_t timeout);

/* Park the current fiber until @a fd is ready (vt_fdwait.h). */
static apr_status_t fiber_wait_fd(vt_fiber_t *f, int fd, apr_int16_t events,
                                  apr_interval_time_t timeout)
{
    struct pollfd p = { .fd = fd, .events = 0 };

    if (vt_fiber_is_cancelled(f)) {
        return APR_ECONNABORTED;
    }
    if (timeout == 0) {
        return thread_wait_fd(fd, events, 0); /* one poll, never blocks */
    }
    if (events & APR_POLLIN) {
        p.events |= POLLIN;
    }
    if (events & APR_POLLOUT) {
        p.events |= POLLOUT;
    }
    return vt_fdwait_park(f, &p, 1, timeout, 0);
}

static apr_status_t thread_wait_fd(int fd, apr_int16_t events,
                                   apr_interval_time_t timeout)
{
    struct pollfd pfd = { .fd = fd, .events = 0 };
    vt_clock_deadline_t d;
    if (events & APR_POLLIN) {
        pfd.events |= POLLIN;
    }
    if (events & APR_POLLOUT) {
        pfd.events |= POLLOUT;
    }
    vt_clock_deadline_start(&d, timeout);
    for (;;) {
        apr_interval_time_t left = vt_clock_deadline_left(&d);
        int ms = left < 0 ? -1
                 : (left + 999) / 1000 > INT_MAX ? INT_MAX
                 : (int)((left + 999) / 1000);
        int n = poll(&pfd, 1, ms);
        if (n > 0) {
            return APR_SUCCESS;
        }
        if (n == 0) {
            return APR_TIMEUP;
        }
        if (errno != EINTR) {
            return errno;
        }
    }
}

apr_status_t vthread_wait_fd(int fd, apr_int16_t events,
                             apr_interval_time_t timeout)
{
    vt_fiber_t *f = vt_fiber_current();
    if (fd < 0 || !(events & (APR_POLLIN | APR_POLLOUT))) {
        return APR_EINVAL;
    }
    return f ? fiber_wait_fd(f, fd, events, timeout)
             : thread_wait_fd(fd, events, timeout);
}

static int socket_fd(apr_socket_t *sock)
{
    apr_os_sock_t fd = -1;
    apr_os_sock_get(&fd, sock);
    return fd;
}

static apr_interval_time_t socket_timeout(apr_socket_t *sock)
{
    apr_interval_time_t t = -1;
    apr_socket_timeout_get(sock, &t);
    return t;
}

apr_status_t vthread_wait_io(apr_socket_t *sock, apr_int16_t events,
                             apr_interval_time_t timeout)
{
    return vthread_wait_fd(socket_fd(sock), events, timeout);
}

/* Each APR call waits up to the socket's timeout once per blocking
 * attempt; so does each wait here. A timeout of 0 means non-blocking:
 * EAGAIN is returned, as APR does. */
static apr_status_t await_retry(vt_fiber_t *f, apr_socket_t *sock, int fd,
                                apr_int16_t events)
{
    apr_interval_time_t t = socket_timeout(sock);
    if (t == 0) {
        return APR_EAGAIN;
    }
    return fiber_wait_fd(f, fd, events, t);
}

/* One non-blocking transfer, retried after parking on EAGAIN. recvmsg and
 * sendmsg with MSG_DONTWAIT are non-blocking for this call whatever the
 * fd's mode, so a blocking APR socket needs no fcntl round trip. */
static apr_status_t transfer(vt_fiber_t *f, apr_socket_t *sock,
                             struct msghdr *msg, int receive,
                             apr_size_t *len)
{
    int fd = socket_fd(sock);
    for (;;) {
        ssize_t n = receive
            ? recvmsg(fd, msg, MSG_DONTWAIT)
            : sendmsg(fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0 || (n == 0 && !receive)) {
            *len = (apr_size_t)n;
            return APR_SUCCESS;
        }
        if (n == 0) {
            *len = 0;
            return APR_EOF;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            *len = 0;
            return errno;
        }
        apr_status_t rv = await_retry(f, sock, fd,
                                      receive ? APR_POLLIN : APR_POLLOUT);
        if (rv != APR_SUCCESS) {
            *len = 0;
            return rv;
        }
    }
}

apr_status_t vthread_socket_recv(apr_socket_t *sock, char *buf,
                                 apr_size_t *len)
{
    vt_fiber_t *f = vt_fiber_current();
    struct iovec iov;
    struct msghdr msg = { 0 };
    if (!f) {
        return apr_socket_recv(sock, buf, len);
    }
    iov.iov_base = buf;
    iov.iov_len = *len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return transfer(f, sock, &msg, 1, len);
}

apr_status_t vthread_socket_send(apr_socket_t *sock, const char *buf,
                                 apr_size_t *len)
{
    vt_fiber_t *f = vt_fiber_current();
    struct iovec iov;
    struct msghdr msg = { 0 };
    if (!f) {
        return apr_socket_send(sock, buf, len);
    }
    iov.iov_base = (void *)buf;
    iov.iov_len = *len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return transfer(f, sock, &msg, 0, len);
}

apr_status_t vthread_socket_sendv(apr_socket_t *sock,
                                  const struct iovec *vec,
                                  apr_int32_t nvec, apr_size_t *len)
{
    vt_fiber_t *f = vt_fiber_current();
    struct msghdr msg = { 0 };
    if (!f) {
        return apr_socket_sendv(sock, vec, nvec, len);
    }
    if (nvec < 0) {
        *len = 0;
        return APR_EINVAL;
    }
    msg.msg_iov = (struct iovec *)vec;
    msg.msg_iovlen = (size_t)(nvec > IOV_MAX ? IOV_MAX : nvec);
    return transfer(f, sock, &msg, 0, len);
}

apr_status_t vthread_socket_connect(apr_socket_t *sock, apr_sockaddr_t *sa)
{
    vt_fiber_t *f = vt_fiber_current();
    apr_interval_time_t t;
    apr_status_t rv;
    if (!f) {
        return apr_socket_connect(sock, sa);
    }
    t = socket_timeout(sock);
    /* Timeout 0 makes APR's connect non-blocking and return EINPROGRESS
     * instead of polling; the socket's own timeout is restored after. */
    apr_socket_timeout_set(sock, 0);
    rv = apr_socket_connect(sock, sa);
    if (rv == APR_EINPROGRESS || rv == EALREADY) {
        if (t == 0) {
            apr_socket_timeout_set(sock, t);
            return rv;
        }
        rv = fiber_wait_fd(f, socket_fd(sock), APR_POLLOUT, t);
        if (rv == APR_SUCCESS) {
            int err = 0;
            socklen_t elen = sizeof(err);
            if (getsockopt(socket_fd(sock), SOL_SOCKET, SO_ERROR, &err,
                           &elen) != 0) {
                err = errno;
            }
            /* Connected: connect() again answers EISCONN, which APR takes
             * as success and uses to record the peer address. */
            rv = err ? err : apr_socket_connect(sock, sa);
        }
    }
    apr_socket_timeout_set(sock, t);
    return rv;
}

apr_status_t vthread_socket_accept(apr_socket_t **new_sock,
                                   apr_socket_t *sock,
                                   apr_pool_t *connection_pool)
{
    vt_fiber_t *f = vt_fiber_current();
    apr_interval_time_t t;
    if (!f) {
        return apr_socket_accept(new_sock, sock, connection_pool);
    }
    t = socket_timeout(sock);
    for (;;) {
        /* On Linux the accepted socket never inherits O_NONBLOCK, so the
         * temporary timeout leaves it as a plain accept would. */
        apr_socket_timeout_set(sock, 0);
        apr_status_t rv = apr_socket_accept(new_sock, sock, connection_pool);
        apr_socket_timeout_set(sock, t);
        if (!APR_STATUS_IS_EAGAIN(rv) || t == 0) {
            return rv;
        }
        rv = fiber_wait_fd(f, socket_fd(sock), APR_POLLIN, t);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
}
