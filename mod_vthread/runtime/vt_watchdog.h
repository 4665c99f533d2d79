/**
 * @file  vt_watchdog.h
 * @brief Reports fibers that hold their carrier too long ("pinned").
 *
 * A thread samples each carrier's switch counter a few times per
 * threshold. A carrier that is running a fiber and has not switched since
 * the threshold ago is pinned by that fiber; it is reported once, with its
 * label, through the runtime's log callback (VT_MSG_PINNED). The hot path
 * pays nothing extra: it already counts switches.
 */
#ifndef VT_WATCHDOG_H
#define VT_WATCHDOG_H

#include <apr_errno.h>
#include <apr_time.h>

struct vt_runtime_t;
typedef struct vt_watchdog_t vt_watchdog_t;

/** Start watching @a rt's carriers; threshold is rt's pinned_warn. */
apr_status_t vt_watchdog_start(vt_watchdog_t **wd, struct vt_runtime_t *rt);

/** Stop the thread and free the watchdog. */
void vt_watchdog_stop(vt_watchdog_t *wd);

#endif /* VT_WATCHDOG_H */
