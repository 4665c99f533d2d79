/* Transparent hooks for the transfers and connection calls: read, write,
 * writev, sendfile, connect, accept, accept4.
 *
 * A non-blocking fd is the caller's business: the call passes through
 * and its wait comes later, in poll or select, which park. A blocking fd
 * (an APR socket with timeout -1, mod_cgid's raw sockets, a pipe) would
 * block the carrier: the hook waits for readiness on the reactor instead,
 * then transfers without blocking, and loops where the kernel would have
 * kept blocking (a blocking write writes everything). The fd's flags as
 * the caller sees them never change across the call; a socket's
 * SO_RCVTIMEO/SO_SNDTIMEO bounds the wait as it bounds the real call. */
#include "vt_hook.h"
#include "vt_hook_calls.h"

#include "vt_clock.h"
#include "vt_fdwait.h"
#include "vt_wait.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/un.h>

/* @return 1 if @a fd is non-blocking or not an fd (the real call then
 *         answers exactly as it would) */
static int hook_passes(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || (fl & O_NONBLOCK);
}

/* A socket's SO_RCVTIMEO or SO_SNDTIMEO in microseconds; -1 if none. */
static apr_interval_time_t hook_sock_timeout(int fd, int opt)
{
    struct timeval tv;
    socklen_t len = sizeof(tv);

    if (getsockopt(fd, SOL_SOCKET, opt, &tv, &len) != 0
        || (tv.tv_sec == 0 && tv.tv_usec == 0)) {
        return -1;
    }
    return (apr_interval_time_t)tv.tv_sec * APR_USEC_PER_SEC + tv.tv_usec;
}

/* Park until @a fd is ready for @a events or @a d passes. A wait the
 * reactor refuses is reported as a pin and returns at once: the caller's
 * next real call then blocks the carrier, as it would have.
 * @return APR_SUCCESS or APR_TIMEUP */
static apr_status_t hook_io_park(vt_fiber_t *f, vt_hook_call_e call, int fd,
                                 short events, const vt_clock_deadline_t *d,
                                 const void *site)
{
    struct pollfd p = { .fd = fd, .events = events };
    apr_interval_time_t left = vt_clock_deadline_left(d);
    apr_status_t rv;

    if (left == 0) {
        return APR_TIMEUP;
    }
    rv = vt_fdwait_park(f, &p, 1, left, VT_WAIT_UNCANCELLABLE);
    if (rv != APR_SUCCESS && rv != APR_TIMEUP) {
        /* Wait on the carrier, as the real call would have: the retry
         * after this does not block, and must not spin. */
        vt_hook_pinned(f, call, site, "the carrier's reactor refused the fd");
        left = vt_clock_deadline_left(d);
        vt_hook_real.poll(&p, 1, left < 0 ? -1
                          : left / 1000 > INT_MAX ? INT_MAX
                          : (int)((left + 999) / 1000));
        return APR_SUCCESS;
    }
    return rv;
}

/* Toggle O_NONBLOCK on for one call; @return the flags to restore, or -1
 * if the fd has none (the call then fails as the real one would). */
static int hook_nonblock_on(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    return fl;
}

static void hook_nonblock_off(int fd, int fl)
{
    if (fl >= 0 && !(fl & O_NONBLOCK)) {
        fcntl(fd, F_SETFL, fl);
    }
}

/* ---- read ----------------------------------------------------------- */

/* A blocking fd that is not a socket (a pipe, a tty, a file): wait until
 * it is readable, then one real read. */
static ssize_t hook_read_other(vt_fiber_t *f, int fd, void *buf, size_t len,
                               const void *site, int saved)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    vt_clock_deadline_t d;
    int parked = 0;

    if (!hook_passes(fd) && vt_hook_real.poll(&p, 1, 0) == 0) {
        vt_clock_deadline_start(&d, -1);
        hook_io_park(f, VT_HOOK_READ, fd, POLLIN, &d, site);
        parked = 1;
    }
    vt_hook_count(f, VT_HOOK_READ, parked);
    /* The real read leaves errno alone on success: let that be the
     * caller's, not recv's ENOTSOCK or another fiber's. */
    errno = saved;
    return vt_hook_real.read(fd, buf, len);
}

ssize_t vt_hook_read(int fd, void *buf, size_t len)
{
    vt_fiber_t *f = vt_hook_fiber();
    const void *site = __builtin_return_address(0);
    vt_clock_deadline_t d;
    ssize_t n;
    int saved;

    if (!f) {
        return vt_hook_real.read(fd, buf, len);
    }
    saved = errno;
    /* For a socket, a read is a recv with no flags. */
    n = recv(fd, buf, len, MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        if (n < 0 && errno == ENOTSOCK) {
            return hook_read_other(f, fd, buf, len, site, saved);
        }
        vt_hook_count(f, VT_HOOK_READ, 0);
        return n;
    }
    if (hook_passes(fd)) {
        vt_hook_count(f, VT_HOOK_READ, 0);
        return vt_hook_return(-1, EAGAIN);
    }
    vt_hook_count(f, VT_HOOK_READ, 1);
    vt_clock_deadline_start(&d, hook_sock_timeout(fd, SO_RCVTIMEO));
    for (;;) {
        if (hook_io_park(f, VT_HOOK_READ, fd, POLLIN, &d, site)
            == APR_TIMEUP) {
            return vt_hook_return(-1, EAGAIN);
        }
        n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0) {
            /* errno still holds the first recv's EAGAIN, or what other
             * fibers set while this one was parked: a successful read
             * leaves the caller's. */
            return vt_hook_return(n, saved);
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return n;
        }
    }
}

/* ---- write, writev -------------------------------------------------- */

/* Send what @a msg holds on a socket; a blocking one gets everything sent
 * (or an error, or its SO_SNDTIMEO), as the kernel would. */
static ssize_t hook_send(vt_fiber_t *f, vt_hook_call_e call, int fd,
                         struct msghdr *msg, size_t total, const void *site)
{
    vt_clock_deadline_t d;
    size_t done = 0;
    int blocking = -1;    /* not known until the kernel says EAGAIN */
    int parked = 0;

    for (;;) {
        /* Once part is sent, a broken pipe is the next call's news (as
         * a real blocking write returns the partial count): no SIGPIPE. */
        ssize_t n = sendmsg(fd, msg, MSG_DONTWAIT | (done ? MSG_NOSIGNAL : 0));
        if (n < 0 && errno == ENOTSOCK) {
            return -2;   /* the caller's real call decides */
        }
        if (n >= 0) {
            done += (size_t)n;
            if (done == total || blocking == 0) {
                break;
            }
            /* Advance past what went out. */
            while (msg->msg_iovlen && (size_t)n >= msg->msg_iov->iov_len) {
                n -= (ssize_t)msg->msg_iov->iov_len;
                msg->msg_iov++;
                msg->msg_iovlen--;
            }
            if (msg->msg_iovlen) {
                msg->msg_iov->iov_base = (char *)msg->msg_iov->iov_base + n;
                msg->msg_iov->iov_len -= (size_t)n;
            }
            if (blocking < 0) {
                blocking = !hook_passes(fd);
                if (!blocking) {
                    break;   /* a partial write is the caller's answer */
                }
            }
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            if (done) {
                break;       /* the error shows on the next call */
            }
            vt_hook_count(f, call, parked);
            return -1;
        }
        if (blocking < 0) {
            blocking = !hook_passes(fd);
        }
        if (!blocking) {
            if (done) {
                break;
            }
            vt_hook_count(f, call, parked);
            return vt_hook_return(-1, EAGAIN);
        }
        if (!parked) {
            parked = 1;
            vt_clock_deadline_start(&d, hook_sock_timeout(fd, SO_SNDTIMEO));
        }
        if (hook_io_park(f, call, fd, POLLOUT, &d, site) == APR_TIMEUP) {
            if (done) {
                break;
            }
            vt_hook_count(f, call, parked);
            return vt_hook_return(-1, EAGAIN);
        }
    }
    vt_hook_count(f, call, parked);
    return (ssize_t)done;
}

/* A blocking fd that is not a socket: wait until writable, then one real
 * write (a pipe takes what fits; a write that still does not fit blocks,
 * rarely, and briefly). */
static void hook_wait_writable(vt_fiber_t *f, vt_hook_call_e call, int fd,
                               const void *site)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    vt_clock_deadline_t d;
    int parked = 0;

    if (!hook_passes(fd) && vt_hook_real.poll(&p, 1, 0) == 0) {
        vt_clock_deadline_start(&d, -1);
        hook_io_park(f, call, fd, POLLOUT, &d, site);
        parked = 1;
    }
    vt_hook_count(f, call, parked);
}

ssize_t vt_hook_write(int fd, const void *buf, size_t len)
{
    vt_fiber_t *f = vt_hook_fiber();
    const void *site = __builtin_return_address(0);
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;
    int saved;

    if (!f || len == 0) {
        return vt_hook_real.write(fd, buf, len);
    }
    saved = errno;
    n = hook_send(f, VT_HOOK_WRITE, fd, &msg, len, site);
    if (n == -2) {
        hook_wait_writable(f, VT_HOOK_WRITE, fd, site);
        errno = saved;      /* not sendmsg's ENOTSOCK on success */
        return vt_hook_real.write(fd, buf, len);
    }
    /* A write that succeeds leaves the caller's errno, not the EAGAIN
     * hook_send() met before it parked (or another fiber's). */
    return n >= 0 ? vt_hook_return(n, saved) : n;
}

/* An iovec array this long is copied on the stack; longer ones are cut,
 * as a partial write the caller must already handle. */
#define HOOK_IOV_ON_STACK 64

ssize_t vt_hook_writev(int fd, const struct iovec *iov, int iovcnt)
{
    vt_fiber_t *f = vt_hook_fiber();
    const void *site = __builtin_return_address(0);
    struct iovec local[HOOK_IOV_ON_STACK];
    struct msghdr msg = { .msg_iov = local };
    size_t total = 0;
    ssize_t n;
    int saved;

    if (!f || iovcnt <= 0 || iovcnt > IOV_MAX) {
        return vt_hook_real.writev(fd, iov, iovcnt);
    }
    saved = errno;
    msg.msg_iovlen = iovcnt > HOOK_IOV_ON_STACK ? HOOK_IOV_ON_STACK
                                                : (size_t)iovcnt;
    for (size_t i = 0; i < msg.msg_iovlen; i++) {
        local[i] = iov[i];
        if (iov[i].iov_len > SSIZE_MAX - total) {
            return vt_hook_real.writev(fd, iov, iovcnt);  /* EINVAL */
        }
        total += iov[i].iov_len;
    }
    if (total == 0) {
        return vt_hook_real.writev(fd, iov, iovcnt);
    }
    n = hook_send(f, VT_HOOK_WRITE, fd, &msg, total, site);
    if (n == -2) {
        hook_wait_writable(f, VT_HOOK_WRITE, fd, site);
        errno = saved;      /* as in vt_hook_write */
        return vt_hook_real.writev(fd, iov, iovcnt);
    }
    return n >= 0 ? vt_hook_return(n, saved) : n;
}

ssize_t vt_hook_sendfile(int out, int in, off_t *offset, size_t count)
{
    vt_fiber_t *f = vt_hook_fiber();
    const void *site = __builtin_return_address(0);
    vt_clock_deadline_t d;
    size_t done = 0;
    int parked = 0;
    int saved = errno;

    if (!f || count == 0 || hook_passes(out)) {
        if (f) {
            vt_hook_count(f, VT_HOOK_SENDFILE, 0);
        }
        errno = saved;      /* hook_passes()'s fcntl may have set it */
        return vt_hook_real.sendfile(out, in, offset, count);
    }
    /* A blocking sendfile sends everything: do so a bufferful at a time,
     * non-blocking, parked in between. */
    vt_clock_deadline_start(&d, hook_sock_timeout(out, SO_SNDTIMEO));
    while (done < count) {
        int fl = hook_nonblock_on(out);
        ssize_t n = vt_hook_real.sendfile(out, in, offset, count - done);
        int err = errno;
        hook_nonblock_off(out, fl);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0 || (err != EAGAIN && err != EWOULDBLOCK)) {
            vt_hook_count(f, VT_HOOK_SENDFILE, parked);
            return done || n == 0 ? vt_hook_return((ssize_t)done, saved)
                                  : vt_hook_return(n, err);
        }
        parked = 1;
        if (hook_io_park(f, VT_HOOK_SENDFILE, out, POLLOUT, &d, site)
            == APR_TIMEUP) {
            vt_hook_count(f, VT_HOOK_SENDFILE, parked);
            return done ? vt_hook_return((ssize_t)done, saved)
                        : vt_hook_return(-1, EAGAIN);
        }
    }
    vt_hook_count(f, VT_HOOK_SENDFILE, parked);
    /* Success leaves the caller's errno, not the EAGAIN met before. */
    return vt_hook_return((ssize_t)done, saved);
}

/* ---- connect, accept ------------------------------------------------ */

/* A Unix socket whose listener's backlog is full answers EAGAIN to a
 * non-blocking connect, where a blocking one would wait: retry on a
 * timer, doubling up to this (microseconds). */
#define HOOK_CONNECT_RETRY_MAX 50000

int vt_hook_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    vt_fiber_t *f = vt_hook_fiber();
    const void *site = __builtin_return_address(0);
    apr_interval_time_t retry = 1000;
    vt_clock_deadline_t d;
    int fl, rv, err, parked = 0;
    int saved = errno;

    if (!f || hook_passes(fd)) {
        if (f) {
            vt_hook_count(f, VT_HOOK_CONNECT, 0);
        }
        return vt_hook_real.connect(fd, addr, len);
    }
    vt_clock_deadline_start(&d, hook_sock_timeout(fd, SO_SNDTIMEO));
    for (;;) {
        fl = hook_nonblock_on(fd);
        rv = vt_hook_real.connect(fd, addr, len);
        err = errno;
        hook_nonblock_off(fd, fl);
        if (rv == 0 || (err != EAGAIN && err != EINPROGRESS)) {
            vt_hook_count(f, VT_HOOK_CONNECT, parked);
            return (int)vt_hook_return(rv, rv == 0 ? saved : err);
        }
        parked = 1;
        if (err == EINPROGRESS) {
            socklen_t elen = sizeof(err);
            if (hook_io_park(f, VT_HOOK_CONNECT, fd, POLLOUT, &d, site)
                == APR_TIMEUP) {
                vt_hook_count(f, VT_HOOK_CONNECT, parked);
                return (int)vt_hook_return(-1, EINPROGRESS);
            }
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
                err = errno;
            }
            if (!err) {
                /* Linux keeps a socket whose non-blocking connect has
                 * completed "connecting" until connect is called again
                 * (that call answers 0); after a blocking connect it is
                 * connected, and another connect answers EISCONN. Make
                 * that call now, so the caller's next one answers as it
                 * would have. */
                fl = hook_nonblock_on(fd);
                rv = vt_hook_real.connect(fd, addr, len);
                if (rv != 0 && errno != EISCONN) {
                    err = errno;
                }
                hook_nonblock_off(fd, fl);
            }
            vt_hook_count(f, VT_HOOK_CONNECT, parked);
            return (int)vt_hook_return(err ? -1 : 0, err ? err : saved);
        }
        /* EAGAIN: a full Unix listener. */
        {
            apr_interval_time_t left = vt_clock_deadline_left(&d);
            vt_waiter_t w;
            if (left == 0) {
                vt_hook_count(f, VT_HOOK_CONNECT, parked);
                return (int)vt_hook_return(-1, EAGAIN);
            }
            vt_wait_init(&w);
            vt_wait_park(&w, VT_PARK_TIMER,
                         left > 0 && left < retry ? left : retry,
                         VT_WAIT_UNCANCELLABLE);
            retry = retry * 2 > HOOK_CONNECT_RETRY_MAX
                    ? HOOK_CONNECT_RETRY_MAX : retry * 2;
        }
    }
}

int vt_hook_accept4(int fd, struct sockaddr *addr, socklen_t *len,
                    int flags)
{
    vt_fiber_t *f = vt_hook_fiber();
    const void *site = __builtin_return_address(0);
    vt_clock_deadline_t d;
    int parked = 0;
    int saved = errno;

    if (!f || hook_passes(fd)) {
        if (f) {
            vt_hook_count(f, VT_HOOK_ACCEPT, 0);
        }
        return vt_hook_real.accept4(fd, addr, len, flags);
    }
    vt_clock_deadline_start(&d, hook_sock_timeout(fd, SO_RCVTIMEO));
    for (;;) {
        /* The accepted socket takes its flags from @a flags only. */
        int fl = hook_nonblock_on(fd);
        int rv = vt_hook_real.accept4(fd, addr, len, flags);
        int err = errno;
        hook_nonblock_off(fd, fl);
        if (rv >= 0 || (err != EAGAIN && err != EWOULDBLOCK)) {
            vt_hook_count(f, VT_HOOK_ACCEPT, parked);
            /* On success, the caller's errno (not the EAGAIN before). */
            return (int)vt_hook_return(rv, rv >= 0 ? saved : err);
        }
        parked = 1;
        if (hook_io_park(f, VT_HOOK_ACCEPT, fd, POLLIN, &d, site)
            == APR_TIMEUP) {
            vt_hook_count(f, VT_HOOK_ACCEPT, parked);
            return (int)vt_hook_return(-1, EAGAIN);
        }
    }
}

int vt_hook_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    if (!vt_hook_fiber()) {
        return vt_hook_real.accept(fd, addr, len);
    }
    return vt_hook_accept4(fd, addr, len, 0);
}
