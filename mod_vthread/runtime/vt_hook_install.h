/**
 * @file  vt_hook_install.h
 * @brief Transparent mode's switch for a process: point the loaded
 *        objects' libc calls at the hooks (vt_hook_calls.h), and keep
 *        objects loaded later and forked children right.
 *
 * Install once per process, before any fiber runs with its transparent
 * switch on (in httpd: child_init, before the MPM starts its threads).
 * Afterwards:
 * - every dlopen through a patched object (apr_dso_load, a module loading
 *   a driver) patches what it loaded before it returns;
 * - a process forked on a carrier runs with the hooks off (the forking
 *   fiber's switch is cleared in the child).
 */
#ifndef VT_HOOK_INSTALL_H
#define VT_HOOK_INSTALL_H

#include <apr.h>
#include <apr_errno.h>

#include "vt_got.h"

/**
 * The objects whose calls are left alone whatever the filter says: libc,
 * the dynamic loader, the vDSO, libpthread, Boost.Context, sanitizer and
 * valgrind runtimes, and the object that holds the hooks themselves.
 * @return non-zero if @a path / @a base may be patched
 */
int vt_hook_install_default_filter(const char *path, apr_uintptr_t base,
                                   void *baton);

/**
 * Patch every loaded object @a filter accepts (and that
 * vt_hook_install_default_filter() does not refuse), now and on every
 * later dlopen.
 * @param filter NULL for the default filter alone
 * @param patched out: slots written (may be NULL)
 * @return APR_SUCCESS; APR_ENOTIMPL (architecture not supported, or a
 *         libc function missing); an errno from mprotect
 */
apr_status_t vt_hook_install(vt_got_filter_fn filter, void *baton,
                             apr_size_t *patched);

/**
 * Put every slot back (tests; a process about to unload the hooks).
 * Later dlopens patch nothing. @return slots restored
 */
apr_size_t vt_hook_uninstall(void);

#endif /* VT_HOOK_INSTALL_H */
