/* Licensed under the Apache License, Version 2.0 (the "License"); you may
 * not use this file except in compliance with the License.
 */

/**
 * @file  vtm_transparent.h
 * @brief Transparent mode in httpd: install the hooks in each child, size
 *        mod_proxy's connection pools for fibers, report pinned calls.
 */
#ifndef VTM_TRANSPARENT_H
#define VTM_TRANSPARENT_H

#include <httpd.h>
#include <http_config.h>

#pragma GCC visibility push(hidden)

/** Register the child_init and mpm_query hooks transparent mode needs. */
void vtm_transparent_register_hooks(void);

/**
 * The reaper's idle task (twice a second): about a second after start,
 * walk the loaded objects once more, so that a slot a thread of another
 * module resolved lazily while it was being patched gets its hook back.
 */
void vtm_transparent_settle(void);

/**
 * Add transparent mode's counters to a server-status page: ?auto keys
 * (VThreadTransparent, VThreadHook*, VThreadBlocking*) when @a short_form,
 * else an HTML table.
 */
void vtm_transparent_status(request_rec *r, int short_form);

#pragma GCC visibility pop

#endif /* VTM_TRANSPARENT_H */
