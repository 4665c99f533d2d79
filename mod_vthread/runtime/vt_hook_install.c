/* Installing the transparent hooks: see vt_hook_install.h. */
#include "vt_hook_install.h"

#include "vt_hook.h"
#include "vt_hook_calls.h"
#include "vt_libstate.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <string.h>

static void *vt_hook_dlopen(const char *file, int mode);

static const vt_got_hook_t hook_table[] = {
    { "poll", 0, (void *)vt_hook_poll },
    { "select", 0, (void *)vt_hook_select },
    { "epoll_wait", 0, (void *)vt_hook_epoll_wait },
    { "connect", 0, (void *)vt_hook_connect },
    { "accept", 0, (void *)vt_hook_accept },
    { "accept4", 0, (void *)vt_hook_accept4 },
    { "read", 0, (void *)vt_hook_read },
    { "write", 0, (void *)vt_hook_write },
    { "writev", 0, (void *)vt_hook_writev },
    { "sendfile", 0, (void *)vt_hook_sendfile },
    { "sendfile64", 0, (void *)vt_hook_sendfile },
    { "nanosleep", 0, (void *)vt_hook_nanosleep },
    { "usleep", 0, (void *)vt_hook_usleep },
    { "clock_nanosleep", 0, (void *)vt_hook_clock_nanosleep },
    { "pthread_mutex_lock", 0, (void *)vt_hook_mutex_lock },
    { "pthread_mutex_unlock", 0, (void *)vt_hook_mutex_unlock },
    /* Default versions only: the old condition variables
     * (pthread_cond_wait@GLIBC_2.2.5) are other functions. */
    { "pthread_cond_wait", 1, (void *)vt_hook_cond_wait },
    { "pthread_cond_timedwait", 1,
      (void *)vt_hook_cond_timedwait },
    { "pthread_cond_signal", 1, (void *)vt_hook_cond_signal },
    { "pthread_cond_broadcast", 1,
      (void *)vt_hook_cond_broadcast },
    { "getaddrinfo", 0, (void *)vt_hook_getaddrinfo },
    { "dlopen", 0, (void *)vt_hook_dlopen },
};

static void *(*hook_real_dlopen)(const char *, int);
static pthread_once_t hook_fork_once = PTHREAD_ONCE_INIT;

/* What vt_hook_install() was given, for later dlopens. */
static _Atomic int hook_installed;
static vt_got_filter_fn hook_filter;
static void *hook_baton;

/* The load base of the object that holds the hooks: its own slots must
 * keep calling the real functions. */
static apr_uintptr_t hook_self_base;
static int hook_self_found;

static const char *const hook_never[] = {
    "/libc.so", "/ld-linux", "linux-vdso", "linux-gate", "/libpthread.so",
    "/libdl.so", "/libboost_context", "/libasan", "/libubsan", "/libtsan",
    "/liblsan", "vgpreload", NULL
};

static int hook_find_self(struct dl_phdr_info *info, size_t size,
                          void *data)
{
    apr_uintptr_t addr = (apr_uintptr_t)data;

    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        apr_uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && addr >= lo && addr < lo + ph->p_memsz) {
            hook_self_base = info->dlpi_addr;
            hook_self_found = 1;
            return 1;
        }
    }
    return 0;
}

int vt_hook_install_default_filter(const char *path, apr_uintptr_t base,
                                   void *baton)
{
    (void)baton;
    for (int i = 0; hook_never[i]; i++) {
        if (strstr(path, hook_never[i])) {
            return 0;
        }
    }
    if (!hook_self_found) {
        dl_iterate_phdr(hook_find_self,
                        (void *)(apr_uintptr_t)vt_hook_install_default_filter);
    }
    return !(hook_self_found && base == hook_self_base);
}

static int hook_filter_both(const char *path, apr_uintptr_t base,
                            void *baton)
{
    (void)baton;
    return vt_hook_install_default_filter(path, base, NULL)
           && (!hook_filter || hook_filter(path, base, hook_baton));
}

/* In a child forked on a carrier, the fiber that forked is the thread's
 * current one still: turn its switch off, so the child (about to exec, as
 * a rule) makes only real calls. */
static void hook_atfork_child(void)
{
    vt_hook_fiber_set(0);
    vt_hook_lock_atfork_child();
}

static void hook_fork_init(void)
{
    pthread_atfork(NULL, NULL, hook_atfork_child);
}

apr_status_t vt_hook_install(vt_got_filter_fn filter, void *baton,
                             apr_size_t *patched)
{
    if (patched) {
        *patched = 0;
    }
    if (!vt_got_supported()) {
        return APR_ENOTIMPL;
    }
    if (vt_hook_resolve() != 0) {
        return APR_ENOTIMPL;
    }
    if (!hook_real_dlopen) {
        hook_real_dlopen = (void *(*)(const char *, int))
            dlsym(RTLD_DEFAULT, "dlopen");
        if (!hook_real_dlopen) {
            return APR_ENOTIMPL;
        }
    }
    pthread_once(&hook_fork_once, hook_fork_init);
    /* Now that a fiber may park inside OpenSSL's I/O. */
    vt_libstate_enable();
    hook_filter = filter;
    hook_baton = baton;
    atomic_store(&hook_installed, 1);
    return vt_got_patch(hook_table, sizeof(hook_table) / sizeof(*hook_table),
                        hook_filter_both, NULL, patched);
}

apr_size_t vt_hook_uninstall(void)
{
    atomic_store(&hook_installed, 0);
    return vt_got_restore();
}

/* dlopen through a patched object: patch what it loaded (and whatever
 * that pulled in) before the caller can call into it. */
static void *vt_hook_dlopen(const char *file, int mode)
{
    void *h = hook_real_dlopen(file, mode);

    if (h && atomic_load(&hook_installed)) {
        int saved = errno;
        vt_got_patch(hook_table, sizeof(hook_table) / sizeof(*hook_table),
                     hook_filter_both, NULL, NULL);
        errno = saved;
    }
    return h;
}
