/**
 * @file  vt_config.h
 * @brief The runtime's settings: what the httpd glue, tests and
 *        benchmarks choose before vt_runtime_create().
 *
 * Fill a vt_config_t with vt_config_default(), change what you need, and
 * check it with vt_config_check() where a bad value must be refused early
 * (the glue does so at config time). vt_runtime_create() copies it; the
 * carriers and the watchdog read that copy for the runtime's lifetime.
 */
#ifndef VT_CONFIG_H
#define VT_CONFIG_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

/** Upper bound on carriers per runtime. */
#define VT_MAX_CARRIERS 256

/**
 * Where the runtime reports (pinned fibers, failures). Called from carrier
 * or watchdog threads; must be thread-safe.
 * @param baton vt_config_t.log_baton
 * @param level a vt_log_level_e (vt_log.h)
 * @param msg_id a vt_msg_e (vt_log.h)
 * @param msg a NUL-terminated message, without newline
 */
typedef void (*vt_log_fn)(void *baton, int level, int msg_id,
                          const char *msg);

/** How carrier and watchdog threads are created (httpd: ap_thread_create). */
typedef apr_status_t (*vt_thread_create_fn)(apr_thread_t **thread,
                                            apr_threadattr_t *attr,
                                            apr_thread_start_t fn,
                                            void *data, apr_pool_t *p);

/** Runtime settings; fill with vt_config_default() first. */
typedef struct vt_config_t {
    /** Carrier threads; 0 means one per online CPU. 1..VT_MAX_CARRIERS. */
    int carriers;
    /** Usable stack bytes per fiber, rounded up to pages; a guard page is
     *  added below. VT_STACK_MIN_SIZE..VT_STACK_MAX_SIZE. */
    apr_size_t stack_size;
    /** Most fibers alive at once in this runtime; 0 is unlimited. */
    apr_uint32_t max_fibers;
    /** Released stacks each carrier keeps committed (fast reuse); above
     *  it, released stacks are kept but their pages given back. */
    apr_uint32_t stack_cache_hot;
    /** Report a fiber that holds its carrier this long; 0 disables the
     *  watchdog. */
    apr_interval_time_t pinned_warn;
    /** Where to report; NULL writes to stderr. */
    vt_log_fn log;
    /** Passed to @a log. */
    void *log_baton;
    /** NULL means apr_thread_create. */
    vt_thread_create_fn thread_create;
} vt_config_t;

/** Fill @a cfg with defaults (online CPUs, 256 KiB, unlimited, 100 ms). */
void vt_config_default(vt_config_t *cfg);

/**
 * Check a configuration without starting anything.
 * @param why on APR_EINVAL, a static message naming the bad field
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t vt_config_check(const vt_config_t *cfg, const char **why);

#endif /* VT_CONFIG_H */
