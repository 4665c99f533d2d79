/**
 * @file  vt_log.h
 * @brief How the runtime reports: a level and a message id, so the httpd
 *        glue can give each kind of message its own APLOGNO.
 *
 * Messages go to the runtime's vt_config_t.log callback, or to stderr when
 * it has none. Callable from any thread.
 */
#ifndef VT_LOG_H
#define VT_LOG_H

#include "vt_config.h"

/** Log levels passed to vt_log_fn, in httpd's order. */
typedef enum {
    VT_LOG_ERR = 3,
    VT_LOG_WARNING = 4,
    VT_LOG_INFO = 6,
    VT_LOG_DEBUG = 7
} vt_log_level_e;

/** What a runtime message is about. */
typedef enum {
    VT_MSG_PINNED = 1,      /**< a fiber held its carrier past pinned_warn */
    VT_MSG_CONFIG,          /**< vt_runtime_create() refused a setting */
    VT_MSG_THREAD,          /**< a carrier or watchdog thread failed */
    VT_MSG_STACK,           /**< a fiber stack could not be mapped */
    VT_MSG_STOP_WAIT,       /**< stop is waiting for fibers that do not end */
    VT_MSG_MISUSE           /**< an API call that needs a fiber made off one */
} vt_msg_e;

/**
 * Report through @a cfg's log callback (printf-style; cut at 511 bytes).
 * @param cfg the runtime's settings, or NULL for stderr
 * @param level a vt_log_level_e
 * @param msg_id a vt_msg_e
 */
void vt_log(const vt_config_t *cfg, int level, int msg_id,
            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* VT_LOG_H */
