/**
 * @file  vt_hook_calls.h
 * @brief The transparent-mode hooks themselves: each has the signature of
 *        the libc function it stands in for (vt_hook.h says how they
 *        behave; vt_hook_install.c points the GOT slots at them).
 */
#ifndef VT_HOOK_CALLS_H
#define VT_HOOK_CALLS_H

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* vt_hook_poll.c */
int vt_hook_poll(struct pollfd *fds, nfds_t n, int timeout);
int vt_hook_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex,
                   struct timeval *tv);
int vt_hook_epoll_wait(int epfd, struct epoll_event *ev, int max,
                       int timeout);

/* vt_hook_sleep.c */
int vt_hook_nanosleep(const struct timespec *req, struct timespec *rem);
int vt_hook_usleep(useconds_t usec);
int vt_hook_clock_nanosleep(clockid_t clock, int flags,
                            const struct timespec *req,
                            struct timespec *rem);

/* vt_hook_io.c */
int vt_hook_connect(int fd, const struct sockaddr *addr, socklen_t len);
int vt_hook_accept(int fd, struct sockaddr *addr, socklen_t *len);
int vt_hook_accept4(int fd, struct sockaddr *addr, socklen_t *len,
                    int flags);
ssize_t vt_hook_read(int fd, void *buf, size_t len);
ssize_t vt_hook_write(int fd, const void *buf, size_t len);
ssize_t vt_hook_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t vt_hook_sendfile(int out, int in, off_t *offset, size_t count);

/* vt_hook_lock.c */
int vt_hook_mutex_lock(pthread_mutex_t *m);
int vt_hook_mutex_unlock(pthread_mutex_t *m);
int vt_hook_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int vt_hook_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                           const struct timespec *abstime);
int vt_hook_cond_signal(pthread_cond_t *c);
int vt_hook_cond_broadcast(pthread_cond_t *c);
/** In a forked child: forget the parent's parked fibers (atfork). */
void vt_hook_lock_atfork_child(void);

/* vt_hook_dns.c */
int vt_hook_getaddrinfo(const char *node, const char *service,
                        const struct addrinfo *hints,
                        struct addrinfo **res);

#endif /* VT_HOOK_CALLS_H */
