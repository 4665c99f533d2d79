/**
 * @file  vt_hook_test.h
 * @brief What the transparent-mode hook suites (check_vt_hook_*.c) share:
 *        the target library they patch, the fixture that loads it and
 *        installs the hooks, fibers with the transparent switch on or
 *        off, and the hook counters.
 *
 * The runtime is linked into the test program, so the program's own libc
 * calls are the runtime's and must stay unpatched. The hooks are
 * installed on libvt_hook_target.so alone (vt_hook_target.c), whose
 * target_X() just calls X() through its own GOT; the suites call libc
 * through vt_tgt.X to go through the hooks, and call libc directly for
 * the reference answers and the test's own plumbing.
 */
#ifndef VT_HOOK_TEST_H
#define VT_HOOK_TEST_H

#include "vt_test_util.h"

#include "vt_blockpool.h"
#include "vt_hook.h"
#include "vt_hook_install.h"

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

/** The target library's functions (dlsym of target_X). */
typedef struct vt_hook_target_t {
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
    int (*mutex_unlock)(pthread_mutex_t *);
    int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
    int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *,
                          const struct timespec *);
    int (*cond_signal)(pthread_cond_t *);
    int (*cond_broadcast)(pthread_cond_t *);
    int (*getaddrinfo)(const char *, const char *, const struct addrinfo *,
                       struct addrinfo **);
    void *(*dlopen)(const char *, int);
} vt_hook_target_t;

/** Filled by vt_hook_test_load(). */
extern vt_hook_target_t vt_tgt;

/** The absolute paths of the two target libraries (the build's .libs). */
extern const char vt_hook_target_path[];
extern const char vt_hook_target2_path[];

/** The install filter: only the target libraries (any path containing
 *  "/libvt_hook_target"), never the test program. */
int vt_hook_test_filter(const char *path, apr_uintptr_t base, void *baton);

/** dlopen the target and fill vt_tgt (ck_asserts). Idempotent. */
void vt_hook_test_load(void);

/** Slots vt_hook_test_setup() patched. */
extern apr_size_t vt_hook_test_patched;

/** Checked fixture: load the target, install the hooks on it. */
void vt_hook_test_setup(void);

/** Checked fixture: uninstall (runs after a failed test too). */
void vt_hook_test_teardown(void);

/** Add @a test to @a s with the fixture above (vt_test_add_fixture). */
void vt_hook_test_add(Suite *s, const TTest *test);

/* ------------------------------------------------------------------ */

/** Start a fiber that turns its transparent switch to @a on, runs
 *  @a fn(@a arg), and turns the switch off again. */
vt_fiber_t *vt_hook_test_go(vt_test_rt_t *t, int on, void (*fn)(void *),
                            void *arg, const char *label);

/** vt_hook_test_go() + vt_test_join(). */
void vt_hook_test_run(vt_test_rt_t *t, int on, void (*fn)(void *),
                      void *arg);

/** Where a body of vt_hook_test_three_ways() runs. */
typedef enum {
    VT_HOOK_OFF_FIBER = 0,  /**< on the test thread */
    VT_HOOK_SWITCH_OFF,     /**< on a fiber, transparent switch off */
    VT_HOOK_SWITCH_ON       /**< on a fiber, transparent switch on */
} vt_hook_mode_e;

/** The current mode, for a body run by vt_hook_test_three_ways(). */
vt_hook_mode_e vt_hook_test_mode(void);

/** Run @a fn(@a arg) off a fiber, on a fiber with the switch off, then on
 *  one with it on, in that order (same answers expected each time); the
 *  fibers on a one-carrier runtime of its own. */
void vt_hook_test_three_ways(void (*fn)(void *), void *arg);

/* ------------------------------------------------------------------ */

/** The counters of @a call now (vt_hook_stats). */
vt_hook_call_stats_t vt_hook_test_stats(vt_hook_call_e call);

/** A connected AF_UNIX stream pair (libc, not the hooks; VT_CHECKed). */
void vt_hook_test_pair(int sv[2]);

/** An fd number that is not open now. */
int vt_hook_test_closed_fd(void);

/** Nanoseconds on CLOCK_MONOTONIC. */
apr_int64_t vt_hook_test_now_ns(void);

/** A deadline @a ms milliseconds from now on @a clock. */
struct timespec vt_hook_test_abs(clockid_t clock, long ms);

#endif /* VT_HOOK_TEST_H */

/* ------------------------------------------------------------------ */
/* Rescue: a plain thread that runs fn(arg) unless ended first, so that a
 * hook that blocks its carrier (a regression) ends the test with a
 * failed check instead of a hang. */

typedef struct vt_hook_rescue_t {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ended;
    int fired;
    long ms;
    void (*fn)(void *);
    void *arg;
} vt_hook_rescue_t;

/** After @a ms milliseconds (unless vt_hook_rescue_end() comes first),
 *  run @a fn(@a arg) on a plain thread. */
void vt_hook_rescue_start(vt_hook_rescue_t *r, long ms, void (*fn)(void *),
                          void *arg);

/** End and join the rescue thread. @return 1 if it had to run fn */
int vt_hook_rescue_end(vt_hook_rescue_t *r);

/** The rescue delay: 5 s (15 s in slow mode), inside vt_test_join's. */
#define VT_HOOK_RESCUE_MS VT_N(5000, 15000)

/** A rescue fn: shutdown(SHUT_RDWR) of the fd *(int *)arg, which ends
 *  every blocking call on it. */
void vt_hook_rescue_shutdown(void *arg);
