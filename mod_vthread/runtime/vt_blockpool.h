/**
 * @file  vt_blockpool.h
 * @brief A small pool of plain threads for calls that cannot be made
 *        readiness waits (getaddrinfo: glibc's DNS I/O happens inside
 *        libc, past every GOT slot): the fiber parks while a pool thread
 *        makes the call.
 *
 * Threads start on demand, up to a maximum, and stay; the queue is
 * bounded. When both are full the caller is told so, makes the call on
 * its carrier, and reports the pin (vt_hook_pinned).
 */
#ifndef VT_BLOCKPOOL_H
#define VT_BLOCKPOOL_H

#include <apr.h>
#include <apr_errno.h>

/** Default threads and queued calls. */
#define VT_BLOCKPOOL_DEFAULT_THREADS 4
#define VT_BLOCKPOOL_DEFAULT_QUEUE 256

/** What the pool is doing, read from any thread. */
typedef struct vt_blockpool_stats_t {
    apr_uint32_t threads;   /**< started so far (they stay) */
    apr_uint32_t busy;      /**< making a call now */
    apr_uint32_t queued;    /**< waiting for a thread */
    apr_uint64_t done;      /**< calls made */
    apr_uint64_t refused;   /**< calls turned away: the queue was full */
} vt_blockpool_stats_t;

/** Set the limits (before the first call; 0 keeps a default). */
void vt_blockpool_configure(apr_uint32_t threads, apr_uint32_t queue);

/**
 * Run @a fn(@a arg) on a pool thread while the calling fiber parks.
 * Must be called on a fiber.
 * @return APR_SUCCESS once @a fn has returned; APR_EAGAIN if the queue is
 *         full, or no thread could be started (nothing was run)
 */
apr_status_t vt_blockpool_run(void (*fn)(void *), void *arg);

/** Read the pool's counters. */
void vt_blockpool_stats(vt_blockpool_stats_t *out);

#endif /* VT_BLOCKPOOL_H */
