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
#include <apr_pools.h>
#include <apr_time.h>

#include "vt_carrier.h"
#include "vt_config.h"

typedef struct vt_watchdog_t vt_watchdog_t;

/**
 * Start a thread that watches @a carriers.
 * @param carriers the runtime's carriers, alive until vt_watchdog_stop()
 * @param ncarriers how many
 * @param cfg its threshold (pinned_warn, > 0), log and thread_create
 * @param p pool for the thread
 */
apr_status_t vt_watchdog_start(vt_watchdog_t **wd, vt_carrier_t *carriers,
                               int ncarriers, const vt_config_t *cfg,
                               apr_pool_t *p);

/** Stop the thread and free the watchdog. */
void vt_watchdog_stop(vt_watchdog_t *wd);

#endif /* VT_WATCHDOG_H */
