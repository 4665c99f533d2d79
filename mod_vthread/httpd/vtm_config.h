/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_config.h
 * @brief mod_vthread's directives and the configuration they build.
 *
 * Two kinds of settings:
 * - per directory (VThreadHandler): which handlers of a location run on a
 *   fiber; an inner scope that says anything replaces the outer one;
 * - per server, main server only (VThreadCarriers, VThreadStackSize,
 *   VThreadMaxFibers, VThreadOverflow, VThreadPinnedWarn): the runtime of
 *   each child. Bad values are refused when the configuration is read,
 *   with the range that is allowed; runtime limits are checked with
 *   vt_config_check() so they cannot drift from the runtime's.
 *
 * Lifecycle rules: the structures live in the configuration pools and are
 * read-only once the configuration is loaded, so any thread may read them.
 */
#ifndef VTM_CONFIG_H
#define VTM_CONFIG_H

#include <httpd.h>
#include <http_config.h>

#include "vt_runtime.h"

#pragma GCC visibility push(hidden)

/** What VThreadHandler says for a directory. */
typedef enum {
    VTM_HANDLER_UNSET = 0,  /**< not said here: inherit */
    VTM_HANDLER_OFF,        /**< no handler runs on a fiber */
    VTM_HANDLER_ON,         /**< whatever handler is selected does */
    VTM_HANDLER_LIST        /**< only the handlers named */
} vtm_handler_mode_e;

/** Per-directory configuration. */
typedef struct vtm_dir_conf_t {
    vtm_handler_mode_e mode;
    /** Handler names (const char *), for VTM_HANDLER_LIST. */
    apr_array_header_t *names;
    /** VThreadTransparent: -1 not said here, 0 Off, 1 On. */
    int transparent;
} vtm_dir_conf_t;

/** What to do with a request when every fiber of the child is taken. */
typedef enum {
    VTM_OVERFLOW_REJECT = 0, /**< 503 Service Unavailable + Retry-After */
    VTM_OVERFLOW_INLINE      /**< run the handler on the MPM worker */
} vtm_overflow_e;

/** Server-wide configuration (only the main server's is used). */
typedef struct vtm_srv_conf_t {
    int carriers;                     /**< 0: one per online CPU */
    apr_size_t stack_size;            /**< bytes */
    apr_uint32_t max_fibers;          /**< per child; 0: unlimited */
    vtm_overflow_e overflow;
    apr_interval_time_t pinned_warn;  /**< 0 disables the watchdog */
} vtm_srv_conf_t;

/** Default VThreadMaxFibers. */
#define VTM_DEFAULT_MAX_FIBERS 10000
/** Default VThreadPinnedWarn. */
#define VTM_DEFAULT_PINNED_WARN apr_time_from_msec(100)
/** Retry-After sent with a 503 at VThreadMaxFibers, in seconds. */
#define VTM_RETRY_AFTER "1"

/** The directive table. */
extern const command_rec vtm_cmds[];

/** @return a fresh per-directory configuration */
void *vtm_config_create_dir(apr_pool_t *p, char *dir);

/** @return @a addv if it says anything, else @a basev */
void *vtm_config_merge_dir(apr_pool_t *p, void *basev, void *addv);

/** @return a server configuration with the defaults */
void *vtm_config_create_srv(apr_pool_t *p, server_rec *s);

/**
 * The server-wide settings.
 * @param s any server; the main server's configuration is returned
 */
const vtm_srv_conf_t *vtm_config_srv(server_rec *s);

/**
 * Does the directory ask for @a handler to run on a fiber?
 * @param dc the request's per-directory configuration
 * @param handler the effective handler name (r->handler in the handler
 *        phase)
 * @return 1 or 0
 */
int vtm_config_wants(const vtm_dir_conf_t *dc, const char *handler);

/**
 * Fill a runtime configuration from the server-wide settings; the log and
 * thread_create fields are left to the caller.
 */
void vtm_config_runtime(const vtm_srv_conf_t *sc,
                            vt_config_t *rc);

/**
 * Does transparent mode apply to this directory (VThreadTransparent, On
 * unless said Off)?
 */
int vtm_config_transparent(const vtm_dir_conf_t *dc);

/**
 * Should this child install the transparent hooks at all? No only when
 * the main server says VThreadTransparent Off and no section says On.
 */
int vtm_config_transparent_anywhere(server_rec *s);

#pragma GCC visibility pop

#endif /* VTM_CONFIG_H */
