/* The object the transparent-mode hook tests patch (check_vt_hook_*.c).
 *
 * The runtime is linked into the test programs themselves, so their own
 * libc calls are the runtime's and must never be redirected. This small
 * shared library is what the tests hand to vt_hook_install() instead
 * (their filter accepts only it): each function here just makes the libc
 * call of its name, through this object's GOT, as libapr or mod_cgid
 * would. Built with libtool as a check-only module, loaded with dlopen
 * (vt_hook_test.c). */
#include <dlfcn.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TARGET __attribute__((visibility("default")))

TARGET int target_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    return poll(fds, n, timeout);
}

TARGET int target_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex,
                         struct timeval *tv)
{
    return select(nfds, rd, wr, ex, tv);
}

TARGET int target_epoll_wait(int epfd, struct epoll_event *ev, int max,
                             int timeout)
{
    return epoll_wait(epfd, ev, max, timeout);
}

TARGET int target_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    return connect(fd, sa, len);
}

TARGET int target_accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    return accept(fd, sa, len);
}

TARGET int target_accept4(int fd, struct sockaddr *sa, socklen_t *len,
                          int flags)
{
    return accept4(fd, sa, len, flags);
}

TARGET ssize_t target_read(int fd, void *buf, size_t len)
{
    return read(fd, buf, len);
}

TARGET ssize_t target_write(int fd, const void *buf, size_t len)
{
    return write(fd, buf, len);
}

TARGET ssize_t target_writev(int fd, const struct iovec *iov, int n)
{
    return writev(fd, iov, n);
}

TARGET ssize_t target_sendfile(int out, int in, off_t *off, size_t count)
{
    return sendfile(out, in, off, count);
}

TARGET int target_nanosleep(const struct timespec *req, struct timespec *rem)
{
    return nanosleep(req, rem);
}

TARGET int target_usleep(useconds_t usec)
{
    return usleep(usec);
}

TARGET int target_clock_nanosleep(clockid_t clock, int flags,
                                  const struct timespec *req,
                                  struct timespec *rem)
{
    return clock_nanosleep(clock, flags, req, rem);
}

TARGET int target_mutex_lock(pthread_mutex_t *m)
{
    return pthread_mutex_lock(m);
}

TARGET int target_mutex_unlock(pthread_mutex_t *m)
{
    return pthread_mutex_unlock(m);
}

TARGET int target_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    return pthread_cond_wait(c, m);
}

TARGET int target_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                 const struct timespec *abstime)
{
    return pthread_cond_timedwait(c, m, abstime);
}

TARGET int target_cond_signal(pthread_cond_t *c)
{
    return pthread_cond_signal(c);
}

TARGET int target_cond_broadcast(pthread_cond_t *c)
{
    return pthread_cond_broadcast(c);
}

TARGET int target_getaddrinfo(const char *node, const char *service,
                              const struct addrinfo *hints,
                              struct addrinfo **res)
{
    return getaddrinfo(node, service, hints, res);
}

TARGET void *target_dlopen(const char *file, int mode)
{
    return dlopen(file, mode);
}
