/* Unit tests for vt_got.c and vt_hook_install.c: installing the hooks on
 * libvt_hook_target.so (see vt_hook_test.h) patches its slots and no
 * other object's (the test program's own calls stay libc's), a second
 * install patches nothing more, uninstall restores as many slots as were
 * patched, after which the target calls libc directly; a library loaded
 * through the patched dlopen is patched too; the default filter refuses
 * libc and the object holding the hooks; a child forked on a fiber runs
 * with the hooks off. */
#include "vt_hook_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* The libc functions libvt_hook_target.so imports and the hooks replace:
 * one slot each (vt_hook_target.c). */
enum { TARGET_SLOTS = 21 };

/* One read and one write through the target (and, if loaded, target2),
 * plus one read by the test program itself, on a socketpair. */
typedef struct {
    ssize_t (*read2)(int, void *, size_t);
} rw_t;

static void body_rw(void *arg)
{
    rw_t *o = arg;
    int sv[2];
    char c;

    VT_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    VT_CHECK(vt_tgt.write(sv[1], "abc", 3) == 3);
    VT_CHECK(vt_tgt.read(sv[0], &c, 1) == 1 && c == 'a');
    /* The program's own read: never patched, never counted. */
    VT_CHECK(read(sv[0], &c, 1) == 1 && c == 'b');
    if (o && o->read2) {
        VT_CHECK(o->read2(sv[0], &c, 1) == 1 && c == 'c');
    }
    close(sv[0]);
    close(sv[1]);
}

/* Read calls counted while @a body runs on a fiber with the switch on. */
static apr_uint64_t reads_counted(vt_test_rt_t *t, rw_t *o)
{
    vt_hook_call_stats_t before = vt_hook_test_stats(VT_HOOK_READ), after;
    vt_hook_test_run(t, 1, body_rw, o);
    after = vt_hook_test_stats(VT_HOOK_READ);
    return after.calls - before.calls;
}

START_TEST(test_install_restore)
{
    vt_test_rt_t t;
    apr_size_t patched = 0, again = 99;

    vt_test_rt_start(&t, 1);
    /* Not installed: the target is libc's. */
    ck_assert_uint_eq(reads_counted(&t, NULL), 0);
    ck_assert_int_eq(vt_hook_install(vt_hook_test_filter, NULL, &patched),
                     APR_SUCCESS);
    ck_assert_uint_eq(patched, TARGET_SLOTS);
    /* Again: every slot holds its hook already. */
    ck_assert_int_eq(vt_hook_install(vt_hook_test_filter, NULL, &again),
                     APR_SUCCESS);
    ck_assert_uint_eq(again, 0);
    /* Installed: the target's read is counted, the program's is not. */
    ck_assert_uint_eq(reads_counted(&t, NULL), 1);
    /* Restored: as many slots as were written, and libc's again. */
    ck_assert_uint_eq(vt_hook_uninstall(), patched);
    ck_assert_uint_eq(reads_counted(&t, NULL), 0);
    ck_assert_uint_eq(vt_hook_uninstall(), 0);
    /* And a new install patches them all again. */
    ck_assert_int_eq(vt_hook_install(vt_hook_test_filter, NULL, &patched),
                     APR_SUCCESS);
    ck_assert_uint_eq(patched, TARGET_SLOTS);
    ck_assert_uint_eq(reads_counted(&t, NULL), 1);
    ck_assert_uint_eq(vt_hook_uninstall(), patched);
    vt_test_rt_stop(&t);
}
END_TEST

/* A filter that accepts nothing: nothing patched, nothing counted. */
static int filter_none(const char *path, apr_uintptr_t base, void *baton)
{
    (void)path;
    (void)base;
    (void)baton;
    return 0;
}

START_TEST(test_filter_refuses)
{
    vt_test_rt_t t;
    apr_size_t patched = 99;

    vt_test_rt_start(&t, 1);
    ck_assert_int_eq(vt_hook_install(filter_none, NULL, &patched),
                     APR_SUCCESS);
    ck_assert_uint_eq(patched, 0);
    ck_assert_uint_eq(reads_counted(&t, NULL), 0);
    ck_assert_uint_eq(vt_hook_uninstall(), 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* dlopen through the patched target: what it loads is patched before
 * the call returns; uninstall restores those slots too. */
START_TEST(test_dlopen_after_install)
{
    vt_test_rt_t t;
    apr_size_t patched = 0;
    void *h2;
    void *sym;
    rw_t o = { NULL };

    vt_test_rt_start(&t, 1);
    ck_assert_int_eq(vt_hook_install(vt_hook_test_filter, NULL, &patched),
                     APR_SUCCESS);
    ck_assert_uint_eq(patched, TARGET_SLOTS);
    errno = EDOM;
    h2 = vt_tgt.dlopen(vt_hook_target2_path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h2 != NULL, "dlopen %s: %s", vt_hook_target2_path,
                  dlerror());
    ck_assert_int_eq(errno, EDOM);
    sym = dlsym(h2, "target2_read");
    ck_assert_ptr_nonnull(sym);
    memcpy(&o.read2, &sym, sizeof(sym));
    /* Two reads counted now: the target's and target2's. */
    ck_assert_uint_eq(reads_counted(&t, &o), 2);
    /* target2's one slot (read) is restored too. */
    ck_assert_uint_eq(vt_hook_uninstall(), patched + 1);
    ck_assert_uint_eq(reads_counted(&t, &o), 0);
    /* Loaded after uninstall: left alone. */
    ck_assert_int_eq(dlclose(h2), 0);
    h2 = vt_tgt.dlopen(vt_hook_target2_path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_ptr_nonnull(h2);
    sym = dlsym(h2, "target2_read");
    memcpy(&o.read2, &sym, sizeof(sym));
    ck_assert_uint_eq(reads_counted(&t, &o), 0);
    ck_assert_uint_eq(vt_hook_uninstall(), 0);
    ck_assert_int_eq(dlclose(h2), 0);
    vt_test_rt_stop(&t);
}
END_TEST

/* What the default filter leaves alone whatever the caller's says. */
START_TEST(test_default_filter)
{
    Dl_info self, libc;
    void *libc_fn = dlsym(RTLD_DEFAULT, "getpid");

    ck_assert(dladdr((void *)vt_hook_install, &self) != 0);
    ck_assert(dladdr(libc_fn, &libc) != 0);
    /* The object that holds the hooks (this program). */
    ck_assert_int_eq(vt_hook_install_default_filter(
                         "", (apr_uintptr_t)self.dli_fbase, NULL), 0);
    /* libc, the loader, the vDSO. */
    ck_assert_int_eq(vt_hook_install_default_filter(
                         libc.dli_fname, (apr_uintptr_t)libc.dli_fbase, NULL),
                     0);
    ck_assert_int_eq(vt_hook_install_default_filter(
                         "/lib64/ld-linux-x86-64.so.2", 1, NULL), 0);
    ck_assert_int_eq(vt_hook_install_default_filter("linux-vdso.so.1", 1,
                                                    NULL), 0);
    /* The target: yes. */
    ck_assert_int_eq(vt_hook_install_default_filter(vt_hook_target_path, 1,
                                                    NULL), 1);
}
END_TEST

/* fork on a fiber with the switch on: the child runs with it off. */
typedef struct {
    int child_status;
    int parent_still_on;
} fork_t;

static void body_fork(void *arg)
{
    fork_t *o = arg;
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: the hooks must make real calls here. */
        _exit(vt_hook_fiber() == NULL ? 0 : 3);
    }
    VT_CHECK(pid > 0);
    o->parent_still_on = vt_hook_fiber() != NULL;
    if (pid > 0) {
        VT_CHECK(waitpid(pid, &o->child_status, 0) == pid);
    }
}

START_TEST(test_fork_child_unhooked)
{
    vt_test_rt_t t;
    fork_t o = { -1, 0 };
    vt_test_rt_start(&t, 1);
    ck_assert_int_eq(vt_hook_install(vt_hook_test_filter, NULL, NULL),
                     APR_SUCCESS);
    vt_hook_test_run(&t, 1, body_fork, &o);
    vt_hook_uninstall();
    vt_test_rt_stop(&t);
    ck_assert(WIFEXITED(o.child_status));
    ck_assert_int_eq(WEXITSTATUS(o.child_status), 0);
    ck_assert_int_eq(o.parent_still_on, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vt_hook_got");
    if (!vt_got_supported()) {
        fprintf(stderr, "vt_got: this architecture is not supported\n");
        return 77;      /* automake: skipped */
    }
    /* Each test installs what it needs; the teardown uninstalls whatever
     * a failed one left. */
    vt_test_add_fixture(s, test_install_restore, vt_hook_test_load,
                        vt_hook_test_teardown);
    vt_test_add_fixture(s, test_filter_refuses, vt_hook_test_load,
                        vt_hook_test_teardown);
    vt_test_add_fixture(s, test_dlopen_after_install, vt_hook_test_load,
                        vt_hook_test_teardown);
    vt_test_add_fixture(s, test_default_filter, vt_hook_test_load,
                        vt_hook_test_teardown);
    vt_test_add_fixture(s, test_fork_child_unhooked, vt_hook_test_load,
                        vt_hook_test_teardown);
    return vt_test_main(s);
}
