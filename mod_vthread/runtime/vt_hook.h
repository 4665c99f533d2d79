/**
 * @file  vt_hook.h
 * @brief What every transparent-mode hook shares: the test that decides
 *        whether a call is served on a fiber, the real libc functions,
 *        the counters, and the pinning report.
 *
 * A hook (vt_hook_io.c, vt_hook_poll.c, vt_hook_lock.c, vt_hook_dns.c)
 * replaces a libc function in the GOT slots of the loaded objects
 * (vt_got.h, vt_hook_install.c). Its contract:
 * - Off a fiber, or on a fiber whose transparent switch is off, it is the
 *   real call after one test (vt_hook_fiber()).
 * - On one, it returns what the real call would (value, errno, partial
 *   I/O, timeouts), but parks the fiber where the real call would block
 *   the thread. errno is set from the last real call just before it
 *   returns: other fibers on the carrier change it while this one parks.
 */
#ifndef VT_HOOK_H
#define VT_HOOK_H

#include <apr.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "vt_fiber.h"

/** The calls the hooks serve, for counters and reports. */
typedef enum {
    VT_HOOK_POLL = 0,
    VT_HOOK_SELECT,
    VT_HOOK_EPOLL_WAIT,
    VT_HOOK_CONNECT,
    VT_HOOK_ACCEPT,
    VT_HOOK_READ,
    VT_HOOK_WRITE,
    VT_HOOK_SENDFILE,
    VT_HOOK_SLEEP,
    VT_HOOK_MUTEX,
    VT_HOOK_COND,
    VT_HOOK_GETADDRINFO,
    VT_HOOK_CALLS
} vt_hook_call_e;

/** Counters of one call, summed over the carriers. */
typedef struct vt_hook_call_stats_t {
    apr_uint64_t calls;     /**< made on a transparent fiber */
    apr_uint64_t parked;    /**< of those, parked the fiber at least once */
    apr_uint64_t pinned;    /**< of those, blocked the carrier instead */
} vt_hook_call_stats_t;

/** The libc functions the hooks stand for, from dlsym (never a slot). */
typedef struct vt_hook_real_t {
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*sendfile)(int, int, off_t *, size_t);
    int (*nanosleep)(const struct timespec *, struct timespec *);
    int (*usleep)(useconds_t);
    int (*clock_nanosleep)(clockid_t, int, const struct timespec *,
                           struct timespec *);
    int (*mutex_lock)(pthread_mutex_t *);
    int (*mutex_trylock)(pthread_mutex_t *);
    int (*mutex_unlock)(pthread_mutex_t *);
    int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
    int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *,
                          const struct timespec *);
    int (*cond_signal)(pthread_cond_t *);
    int (*cond_broadcast)(pthread_cond_t *);
    int (*getaddrinfo)(const char *, const char *,
                       const struct addrinfo *, struct addrinfo **);
} vt_hook_real_t;

/** The real functions; filled by vt_hook_resolve(). */
extern vt_hook_real_t vt_hook_real;

/**
 * Look the real functions up (dlsym, so an interposer such as a
 * sanitizer's stays in the chain). Idempotent.
 * @return 0, or -1 if one is missing
 */
int vt_hook_resolve(void);

/** The fiber a hook serves, or NULL for "make the real call". Inline:
 *  it is the one test every hooked call pays off a fiber. */
static inline vt_fiber_t *vt_hook_fiber(void)
{
    vt_fiber_t *f = vt_fiber_current();
    return (f && f->transparent) ? f : NULL;
}

/**
 * Turn the calling fiber's transparent switch on or off.
 * @return the previous value (0 off a fiber)
 */
int vt_hook_fiber_set(int on);

/** Count one call of @a call on @a f (it parked if @a parked). */
void vt_hook_count(const vt_fiber_t *f, vt_hook_call_e call, int parked);

/**
 * Report a call that blocked its carrier instead of parking: counted,
 * and logged once per call site through the report function.
 * @param site the hooked call's return address (who called it)
 * @param why what could not yield, for the log line
 */
void vt_hook_pinned(const vt_fiber_t *f, vt_hook_call_e call,
                    const void *site, const char *why);

/** How a pinned call is reported (the glue logs it with its request). */
typedef void (*vt_hook_report_fn)(const char *call, const char *object,
                                  const void *site, const char *why);

/** Set the report function (NULL: stderr). */
void vt_hook_set_report(vt_hook_report_fn fn);

/** The name of @a call, as counters and logs show it. */
const char *vt_hook_call_name(vt_hook_call_e call);

/** Sum the counters of every carrier. @a out has VT_HOOK_CALLS entries. */
void vt_hook_stats(vt_hook_call_stats_t *out);

/** Set errno to @a err and return @a rv: a hook's last step. */
static inline long vt_hook_return(long rv, int err)
{
    errno = err;
    return rv;
}

#endif /* VT_HOOK_H */
