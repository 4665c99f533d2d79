/**
 * @file  vt_got.h
 * @brief Redirect the calls that loaded objects make to chosen libc
 *        functions, by rewriting their GOT slots (transparent mode).
 *
 * httpd loads modules with dlopen(RTLD_NOW | RTLD_GLOBAL) after libc is
 * already in the global scope, so a function defined in a module never
 * preempts libc's for another object: the callers' GOT slots must be
 * rewritten instead (docs/transparent.md). This file walks the loaded
 * objects (dl_iterate_phdr), reads each one's PLT and GLOB_DAT
 * relocations, and points the slots of the named symbols at their hooks,
 * lifting full RELRO for the write (mprotect RW, write, back to RO).
 *
 * Rules it keeps:
 * - It never saves a slot's value as "the original": a lazily bound slot
 *   holds the PLT stub, and calling the stub rebinds the slot and removes
 *   the hook. The hooks take their real functions from dlsym (vt_hook.c).
 * - A walk again (after a dlopen) only writes slots that do not hold their
 *   hook yet, so it may be repeated at any time.
 * - A hook marked default_only replaces only slots bound to libc's
 *   default version of its symbol: pthread_cond_wait@GLIBC_2.2.5 (an old
 *   binary's) is a different function from the default one, which is
 *   @GLIBC_2.3.2 on x86-64 and @GLIBC_2.17 on aarch64.
 */
#ifndef VT_GOT_H
#define VT_GOT_H

#include <apr.h>
#include <apr_errno.h>

/** One function to redirect. */
typedef struct vt_got_hook_t {
    const char *name;     /**< the imported symbol, e.g. "poll" */
    int default_only;     /**< only slots bound to libc's default version
                               (the one dlsym gives) */
    void *hook;           /**< what its slots will point at */
} vt_got_hook_t;

/**
 * Decide whether an object's slots may be rewritten.
 * @param path the object's path as the loader has it ("" for the program)
 * @param base its load address
 * @param baton the caller's
 * @return non-zero to patch it
 */
typedef int (*vt_got_filter_fn)(const char *path, apr_uintptr_t base,
                                void *baton);

/** Does this build know how to patch this architecture's relocations? */
int vt_got_supported(void);

/**
 * Point every matching slot of every object @a filter accepts at its hook.
 * Safe to call again (after a dlopen): slots already hooked are left.
 * @param hooks the functions to redirect
 * @param n how many
 * @param patched out: slots written by this call (may be NULL)
 * @return APR_SUCCESS; APR_ENOTIMPL on an unsupported architecture; an
 *         errno if an mprotect failed (the slots written so far stay)
 */
apr_status_t vt_got_patch(const vt_got_hook_t *hooks, apr_size_t n,
                          vt_got_filter_fn filter, void *baton,
                          apr_size_t *patched);

/**
 * Put back what every slot this process patched held before, newest
 * first. For tests, and for a process that unloads the hooks' code.
 * @return how many slots were restored
 */
apr_size_t vt_got_restore(void);

#endif /* VT_GOT_H */
