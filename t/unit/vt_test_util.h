/**
 * @file  vt_test_util.h
 * @brief Helpers shared by the Check suites in t/unit/: a runtime per test,
 *        checks made on fibers, a log collector, fiber bodies used by
 *        several suites, a capture of stderr, loopback sockets.
 *
 * Rules the suites follow:
 * - Check's ck_assert*() is only called on the thread that runs the test.
 *   (In CK_FORK=no mode a failed assertion longjmp()s to the runner, which
 *   must never happen from a fiber stack or a carrier thread.) Code that
 *   runs on a fiber or a helper thread uses VT_CHECK(), which records the
 *   first failure; vt_test_rt_stop() asserts that none was recorded.
 * - Every test creates and stops its own runtime with vt_test_rt_start()
 *   and vt_test_rt_stop(), which also create and destroy the test's pool.
 *
 * Slow mode (vt_test_slow()): fewer fibers and iterations, wider time
 * bounds, longer Check timeouts. It is on when the environment has VT_SLOW=1,
 * when the program was built with AddressSanitizer, or when it runs under
 * valgrind (detected with RUNNING_ON_VALGRIND when configure found
 * valgrind/valgrind.h and defined HAVE_VALGRIND_VALGRIND_H).
 */
#ifndef VT_TEST_UTIL_H
#define VT_TEST_UTIL_H

#include <check.h>

#include <apr.h>
#include <apr_errno.h>
#include <apr_network_io.h>
#include <apr_pools.h>
#include <apr_time.h>

#include "vthread.h"
#include "vt_clock.h"
#include "vt_log.h"
#include "vt_runtime.h"
#include "vt_spawn.h"
#include "vt_wait.h"

/** Slow mode: VT_SLOW=1, ASan build, or under valgrind. */
int vt_test_slow(void);

/** Running under valgrind (which runs one thread at a time, so a thread
 *  spinning on the CPU can starve the others for long stretches)? */
int vt_test_under_valgrind(void);

/** @a normal, or @a slow in slow mode. */
#define VT_N(normal, slow) (vt_test_slow() ? (slow) : (normal))

/** Check's per-test timeout in seconds (30, or 60 in slow mode; Check
 *  multiplies it by CK_TIMEOUT_MULTIPLIER). */
int vt_test_timeout(void);

/** Milliseconds as apr_interval_time_t. */
#define VT_MS(ms) ((apr_interval_time_t)(ms) * 1000)

/** Generous upper bound for "returns at once" / "soon" (1 s, 10 s slow). */
apr_interval_time_t vt_test_soon(void);

/* ------------------------------------------------------------------ */
/* Checks off the test thread. */

/**
 * Record a failure if @a ok is 0 (thread-safe; the first one is kept).
 * @return @a ok
 */
int vt_test_check(int ok, const char *expr, const char *file, int line);

/** Check a condition on a fiber or helper thread. */
#define VT_CHECK(cond) vt_test_check((cond) ? 1 : 0, #cond, __FILE__, __LINE__)

/** Forget earlier failures (vt_test_rt_start() does this). */
void vt_test_failures_reset(void);

/** ck_assert that no VT_CHECK() failed (vt_test_rt_stop() does this). */
void vt_test_assert_no_failures(void);

/* ------------------------------------------------------------------ */
/* Log collector: pass vt_test_log_fn and a vt_test_log_t as baton. */

#define VT_TEST_LOG_MAX 64

typedef struct vt_test_log_t {
    int n;                          /**< messages received (may exceed MAX) */
    int level[VT_TEST_LOG_MAX];
    int id[VT_TEST_LOG_MAX];
    char msg[VT_TEST_LOG_MAX][512];
} vt_test_log_t;

void vt_test_log_fn(void *baton, int level, int msg_id, const char *msg);

/** How many messages with @a msg_id were received. */
int vt_test_log_count(vt_test_log_t *log, int msg_id);

/** Does a message with @a msg_id contain @a needle? */
int vt_test_log_find(vt_test_log_t *log, int msg_id, const char *needle);

/** Print everything received to stderr (for failure diagnosis). */
void vt_test_log_dump(vt_test_log_t *log);

/* ------------------------------------------------------------------ */
/* A runtime per test. */

typedef struct vt_test_rt_t {
    apr_pool_t *pool;       /**< the test's pool (runtime and sockets) */
    vt_runtime_t *rt;
    vt_config_t cfg;
    vt_test_log_t log;      /**< what the runtime logged */
} vt_test_rt_t;

/** Default config with @a carriers carriers, logging into t->log. */
void vt_test_config(vt_test_rt_t *t, int carriers);

/** Create the pool and start a runtime with t->cfg (call
 *  vt_test_config() first, then adjust t->cfg). ck_asserts success. */
void vt_test_rt_start_cfg(vt_test_rt_t *t);

/** vt_test_config(t, carriers) + vt_test_rt_start_cfg(t). */
void vt_test_rt_start(vt_test_rt_t *t, int carriers);

/** Stop the runtime (asserting it returns APR_SUCCESS and that no fiber is
 *  left alive), destroy the pool, and assert no VT_CHECK() failed. */
void vt_test_rt_stop(vt_test_rt_t *t);

/** Create and start a fiber; ck_asserts creation succeeded. */
vt_fiber_t *vt_test_go(vt_test_rt_t *t, vthread_fn_t fn, void *arg,
                       const char *label);

/** Join @a f waiting at most vt_test_timeout()/2 seconds; ck_asserts the
 *  join succeeded and returns the fiber's result. */
apr_status_t vt_test_join(vt_fiber_t *f);

/** vt_test_go() + vt_test_join(). */
apr_status_t vt_test_run(vt_test_rt_t *t, vthread_fn_t fn, void *arg);

/** Sum of every carrier's counters. */
void vt_test_stats_sum(const vt_runtime_t *rt, vt_carrier_stats_t *sum);

/** Poll @a pred(@a arg) every millisecond for at most @a max.
 *  @return 1 once it holds, 0 on timeout */
int vt_test_wait_until(int (*pred)(void *arg), void *arg,
                       apr_interval_time_t max);

/** Wait (at most a few seconds) until the runtime's parked counters sum
 *  to at least the given numbers. @return 1 if reached */
int vt_test_wait_parked(const vt_runtime_t *rt, apr_uint32_t timer,
                        apr_uint32_t io, apr_uint32_t sync);

/** Wait (at most a few seconds) until vt_runtime_live() is @a n. */
int vt_test_wait_live(const vt_runtime_t *rt, apr_uint32_t n);

/** Start a plain APR thread (ck_asserts success). */
apr_thread_t *vt_test_thread(apr_pool_t *p, void *(*fn)(void *arg),
                             void *arg);

/** Join a plain thread started with vt_test_thread(). */
void vt_test_thread_join(apr_thread_t *th);

/** Microseconds since @a since. */
apr_interval_time_t vt_test_elapsed(apr_time_t since);

/* ------------------------------------------------------------------ */
/* Fiber bodies used by several suites. */

/** What vt_test_fn_whoami() saw on its fiber. */
typedef struct vt_test_whoami_t {
    int arg_seen;           /**< set to 1 */
    int on_fiber;           /**< vthread_on_fiber() */
    vt_fiber_t *self;       /**< vt_fiber_current() */
    int carrier;            /**< its carrier's index, -1 off a fiber */
    char label[VT_FIBER_LABEL_MAX + 8];     /**< its label */
} vt_test_whoami_t;

/** Fill the vt_test_whoami_t @a arg; returns 42. */
apr_status_t vt_test_fn_whoami(void *arg);

/** Do nothing; returns APR_SUCCESS. */
apr_status_t vt_test_fn_nothing(void *arg);

/** What the parking fibers wait on. */
typedef struct vt_test_parks_t {
    vthread_event_t *ev;
    int fd;
} vt_test_parks_t;

/** Park on the event of the vt_test_parks_t @a arg (no timeout); returns
 *  what vthread_event_wait() returned. */
apr_status_t vt_test_fn_park_sync(void *arg);

/* ------------------------------------------------------------------ */
/* What the process writes to stderr meanwhile (fd 2 goes to a pipe). */

typedef struct vt_test_stderr_t {
    int rd, wr;             /**< the pipe */
    int saved;              /**< the real stderr */
} vt_test_stderr_t;

/** Send stderr to a pipe until vt_test_stderr_end() (ck_asserts the pipe
 *  and dup succeed). No ck_assert*() in between: in CK_FORK=no mode a
 *  failure would leave stderr in the pipe. Up to a pipe's capacity only. */
void vt_test_stderr_begin(vt_test_stderr_t *c);

/** Put stderr back and read what was written into @a buf (NUL-terminated,
 *  at most @a size - 1 bytes). @return the number of bytes read, 0 if
 *  nothing was written */
apr_size_t vt_test_stderr_end(vt_test_stderr_t *c, char *buf,
                              apr_size_t size);

/* ------------------------------------------------------------------ */
/* Loopback sockets (127.0.0.1, ephemeral ports only). */

/**
 * A TCP listener on 127.0.0.1:0.
 * @param rcvbuf if > 0, SO_RCVBUF set before listen (accepted sockets
 *        inherit it)
 * @param sa where to store an address a client can connect to
 */
apr_socket_t *vt_test_listener(apr_pool_t *p, int rcvbuf,
                               apr_sockaddr_t **sa);

/** A new (blocking) TCP socket for 127.0.0.1. */
apr_socket_t *vt_test_socket(apr_pool_t *p);

/** A connected pair over loopback, made with plain APR calls. */
void vt_test_socket_pair(apr_pool_t *p, apr_socket_t **client,
                         apr_socket_t **server);

/** An address on 127.0.0.1 where nothing listens (a port just freed). */
apr_sockaddr_t *vt_test_closed_addr(apr_pool_t *p);

/** The byte expected at offset @a i of a test stream. */
#define VT_PATTERN(i) ((char)(((i) * 131u + ((i) >> 12)) & 0xff))

/** Fill @a buf with the pattern from stream offset @a off. */
void vt_test_pattern_fill(char *buf, apr_size_t len, apr_size_t off);

/** Does @a buf hold the pattern from offset @a off? */
int vt_test_pattern_ok(const char *buf, apr_size_t len, apr_size_t off);

/* ------------------------------------------------------------------ */

/** A Check main: apr_initialize, run @a s, apr_terminate.
 *  @return EXIT_SUCCESS if every test passed */
int vt_test_main(Suite *s);

/** Add a test to @a s in a TCase of its own, named after the test (so
 *  CK_RUN_CASE=test_name runs just that one), with the suites' timeout and
 *  a teardown that stops a runtime a failed test left running (so that
 *  with CK_FORK=no one failure does not cascade into the tests after). */
void vt_test_add(Suite *s, const TTest *test);

/** vt_test_add() with a checked fixture of the suite's own as well
 *  (@a setup may be NULL). Check runs teardowns in reverse order: the
 *  runtime a failed test left running is stopped before @a teardown. */
void vt_test_add_fixture(Suite *s, const TTest *test, SFun setup,
                         SFun teardown);

#endif /* VT_TEST_UTIL_H */
