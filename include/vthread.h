/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vthread.h
 * @brief mod_vthread public API: fiber-aware twins of APR's blocking calls.
 *
 * @defgroup VTHREAD mod_vthread public API
 * @{
 *
 * A handler that mod_vthread offloads runs on a fiber (a green thread) on
 * one of a few carrier threads per child. Every call here that would block
 * parks the calling fiber instead, and the carrier runs other fibers until
 * the wait is over. Called off a fiber (an MPM worker, a plain thread), each
 * call behaves like the APR call it mirrors and blocks the calling thread,
 * so a handler written against this header works whether or not the
 * location offloads it.
 *
 * Lifecycle rules:
 * - A fiber never migrates: it runs on the carrier it started on until it
 *   ends, so thread-local state stays coherent across a park.
 * - A fiber that is cancelled (its client went away, the child is stopping)
 *   keeps running, but its current and every later wait return
 *   APR_ECONNABORTED at once. It should unwind and return.
 * - Work that never calls into this API (a CPU loop, a blocking libc call)
 *   pins its carrier: the other fibers there wait. The watchdog logs such a
 *   fiber once (see VThreadPinnedWarn).
 *
 * Status codes common to all waits:
 * - APR_SUCCESS       the wait completed;
 * - APR_TIMEUP        the timeout given (or the socket's timeout) expired;
 * - APR_ECONNABORTED  the fiber was cancelled or the runtime is stopping.
 *
 * Timeouts are apr_interval_time_t microseconds: a negative value waits
 * forever, zero polls once.
 *
 * Load order: another module that calls this API resolves its symbols
 * from mod_vthread.so, so its LoadModule line must come after
 * "LoadModule vthread_module".
 */

#ifndef VTHREAD_H
#define VTHREAD_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_network_io.h>
#include <apr_poll.h>
#include <apr_pools.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* mod_vthread.so is built with hidden visibility; this API is what it
 * exports. */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(default)
#endif

/** Major version of this API; bumped on incompatible change. */
#define VTHREAD_API_MAJOR 1
/** Minor version of this API; bumped when calls are added. */
#define VTHREAD_API_MINOR 0

/** A fiber started with vthread_spawn(). */
typedef struct vthread_t vthread_t;
/** Body of a fiber started with vthread_spawn(). */
typedef apr_status_t (*vthread_fn_t)(void *arg);

/* ------------------------------------------------------------------ */
/** @name Fibers */
/** @{ */

/**
 * Is the caller running on a fiber?
 * @return 1 on a fiber, 0 on a plain thread
 */
int vthread_on_fiber(void);

/**
 * Sleep for a while.
 * @param t how long, in microseconds; zero or negative returns at once
 * @return APR_SUCCESS, or APR_ECONNABORTED if the fiber was cancelled
 *         (possibly before @a t elapsed)
 * @remark Off a fiber this is apr_sleep() and always returns APR_SUCCESS.
 */
apr_status_t vthread_sleep(apr_interval_time_t t);

/**
 * Let the other runnable fibers on this carrier run, then continue. It
 * yields even when the fiber is cancelled, so a loop that waits for
 * another fiber by yielding cannot spin its carrier.
 * @return APR_SUCCESS, or APR_ECONNABORTED if the fiber is cancelled
 * @remark Off a fiber this is apr_thread_yield().
 */
apr_status_t vthread_yield(void);

/**
 * Start a fiber on the least loaded carrier.
 * @param thread where to store a handle to join or cancel it, or NULL to
 *        start it detached; a handle must be given to vthread_join()
 *        exactly once or its memory is never freed
 * @param fn what the fiber runs; its return value is what vthread_join()
 *        reports
 * @param arg passed to @a fn
 * @return APR_SUCCESS; APR_EAGAIN if the runtime is at VThreadMaxFibers;
 *         APR_ECONNABORTED if the runtime is stopping; APR_EINVAL if @a fn
 *         is NULL or no runtime runs in this process
 * @remark Works on and off a fiber (a plain thread may start fibers).
 */
apr_status_t vthread_spawn(vthread_t **thread, vthread_fn_t fn, void *arg);

/**
 * Wait for a fiber started with vthread_spawn() to end, and free it.
 * @param thread the handle from vthread_spawn()
 * @param timeout how long to wait; negative waits until it ends
 * @param result where to store what its function returned (may be NULL)
 * @return APR_SUCCESS once it has ended (the handle is then freed);
 *         APR_TIMEUP or APR_ECONNABORTED if the wait ended first (the
 *         handle stays valid and must be joined again)
 */
apr_status_t vthread_join(vthread_t *thread, apr_interval_time_t timeout,
                          apr_status_t *result);

/**
 * Ask a fiber to stop: its current wait and every later one return
 * APR_ECONNABORTED. Safe from any thread; idempotent.
 * @param thread the handle from vthread_spawn()
 */
void vthread_cancel(vthread_t *thread);

/**
 * Has the calling fiber been cancelled?
 * @return 1 if cancelled, 0 otherwise (always 0 off a fiber)
 */
int vthread_cancelled(void);

/**
 * Run @a fn(@a arg) when the calling fiber ends, however it ends. Deferred
 * calls run exactly once, last registered first, on the fiber itself.
 * @return APR_SUCCESS; APR_EINVAL off a fiber (a plain thread has no end
 *         this API can see: use a pool cleanup there); APR_ENOMEM
 */
apr_status_t vthread_defer(void (*fn)(void *arg), void *arg);

/** @} */

/* ------------------------------------------------------------------ */
/** @name Sockets
 * Same signatures and results as the APR calls they mirror. The socket's
 * own timeout (apr_socket_timeout_set()) bounds each wait; expiry returns
 * APR_TIMEUP. A socket may be waited on by one fiber at a time per
 * carrier. */
/** @{ */

/** Fiber-aware apr_socket_connect(). */
apr_status_t vthread_socket_connect(apr_socket_t *sock, apr_sockaddr_t *sa);

/** Fiber-aware apr_socket_accept(). */
apr_status_t vthread_socket_accept(apr_socket_t **new_sock,
                                   apr_socket_t *sock,
                                   apr_pool_t *connection_pool);

/**
 * Fiber-aware apr_socket_recv().
 * @param len in: the buffer's size; out: bytes read
 * @return APR_SUCCESS with at least one byte, APR_EOF at end of stream
 *         (with *len 0), APR_TIMEUP, APR_ECONNABORTED, or an errno
 */
apr_status_t vthread_socket_recv(apr_socket_t *sock, char *buf,
                                 apr_size_t *len);

/**
 * Fiber-aware apr_socket_send(). Like APR it may send less than asked.
 * @param len in: bytes to send; out: bytes sent
 */
apr_status_t vthread_socket_send(apr_socket_t *sock, const char *buf,
                                 apr_size_t *len);

/**
 * Fiber-aware apr_socket_sendv(). Like APR it may send less than asked.
 * @param len out: bytes sent
 */
apr_status_t vthread_socket_sendv(apr_socket_t *sock,
                                  const struct iovec *vec,
                                  apr_int32_t nvec, apr_size_t *len);

/**
 * Wait until a socket is readable or writable.
 * @param sock the socket
 * @param events APR_POLLIN, APR_POLLOUT, or both
 * @param timeout how long; negative waits forever
 * @return APR_SUCCESS when ready (also on error or hang-up: the next
 *         call on the socket reports those), APR_TIMEUP, APR_ECONNABORTED
 */
apr_status_t vthread_wait_io(apr_socket_t *sock, apr_int16_t events,
                             apr_interval_time_t timeout);

/** As vthread_wait_io() for a plain file descriptor. */
apr_status_t vthread_wait_fd(int fd, apr_int16_t events,
                             apr_interval_time_t timeout);

/** @} */

/* ------------------------------------------------------------------ */
/** @name Synchronisation
 * These work between fibers on any carriers and plain threads alike: an
 * MPM worker may signal an event that 10,000 fibers wait on. They are
 * allocated from @a p and destroyed with it; destroying one that still has
 * waiters is undefined. */
/** @{ */

/** An event count: waiters sleep until the next signal or broadcast. */
typedef struct vthread_event_t vthread_event_t;
/** A mutex whose lock() parks a fiber instead of blocking its carrier. */
typedef struct vthread_mutex_t vthread_mutex_t;
/** A condition variable used with a vthread_mutex_t. */
typedef struct vthread_cond_t vthread_cond_t;
/** A bounded FIFO of pointers, with back-pressure. */
typedef struct vthread_chan_t vthread_chan_t;

/** Create an event. @return APR_SUCCESS or APR_ENOMEM */
apr_status_t vthread_event_create(vthread_event_t **ev, apr_pool_t *p);

/**
 * Wait for the next vthread_event_signal() or vthread_event_broadcast().
 * A signal given while nobody waited is kept (one at most) and makes the
 * next wait return at once; a broadcast wakes only those waiting now.
 * @return APR_SUCCESS, APR_TIMEUP, APR_ECONNABORTED
 */
apr_status_t vthread_event_wait(vthread_event_t *ev,
                                apr_interval_time_t timeout);

/** Wake one waiter, or keep the signal for the next wait. */
void vthread_event_signal(vthread_event_t *ev);

/**
 * Wake every current waiter.
 * @return how many were woken
 */
apr_size_t vthread_event_broadcast(vthread_event_t *ev);

/** Create a mutex (not recursive). @return APR_SUCCESS or APR_ENOMEM */
apr_status_t vthread_mutex_create(vthread_mutex_t **m, apr_pool_t *p);

/**
 * Lock, parking (on a fiber) or blocking (off one) while another holds it.
 * Cancellation does not interrupt this wait: a mutex guards a short
 * section, and a cancelled fiber often needs it to clean up.
 * @return APR_SUCCESS
 */
apr_status_t vthread_mutex_lock(vthread_mutex_t *m);

/** @return APR_SUCCESS if locked, APR_EBUSY if held by another */
apr_status_t vthread_mutex_trylock(vthread_mutex_t *m);

/** Unlock; the longest waiter gets the mutex next. */
apr_status_t vthread_mutex_unlock(vthread_mutex_t *m);

/** Create a condition variable. @return APR_SUCCESS or APR_ENOMEM */
apr_status_t vthread_cond_create(vthread_cond_t **c, apr_pool_t *p);

/**
 * Unlock @a m, wait for a signal, and lock @a m again before returning,
 * whatever the result.
 * @return APR_SUCCESS, APR_TIMEUP, APR_ECONNABORTED
 */
apr_status_t vthread_cond_wait(vthread_cond_t *c, vthread_mutex_t *m,
                               apr_interval_time_t timeout);

/** Wake one waiter. */
void vthread_cond_signal(vthread_cond_t *c);

/** Wake every waiter. */
void vthread_cond_broadcast(vthread_cond_t *c);

/**
 * Create a channel.
 * @param capacity how many items it holds before senders wait (1 or more)
 * @return APR_SUCCESS, APR_EINVAL for a zero capacity, APR_ENOMEM
 */
apr_status_t vthread_chan_create(vthread_chan_t **ch, apr_size_t capacity,
                                 apr_pool_t *p);

/**
 * Add an item, waiting while the channel is full.
 * @return APR_SUCCESS, APR_TIMEUP, APR_ECONNABORTED, or APR_EPIPE if the
 *         channel is closed
 */
apr_status_t vthread_chan_send(vthread_chan_t *ch, void *item,
                               apr_interval_time_t timeout);

/**
 * Take the oldest item, waiting while the channel is empty.
 * @return APR_SUCCESS, APR_TIMEUP, APR_ECONNABORTED, or APR_EOF once the
 *         channel is closed and empty
 */
apr_status_t vthread_chan_recv(vthread_chan_t *ch, void **item,
                               apr_interval_time_t timeout);

/** Close: waiting senders get APR_EPIPE, receivers drain then APR_EOF. */
void vthread_chan_close(vthread_chan_t *ch);

/** @} */

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

/** @} */
#endif /* VTHREAD_H */
