/**
 * @file  vt_annotate.h
 * @brief Tell valgrind and AddressSanitizer about fiber stacks and
 *        switches, so their reports stay true under fibers. Compiles to
 *        nothing when neither is in use.
 *
 * ASan protocol: whoever jumps calls vt_annotate_switch_start() with the
 * target stack's bounds; whoever lands calls vt_annotate_switch_finish().
 * A fiber that ends passes NULL as its fake-stack slot so ASan frees it.
 */
#ifndef VT_ANNOTATE_H
#define VT_ANNOTATE_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define VT_ANNOTATE_ASAN 1
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define VT_ANNOTATE_VALGRIND 1
#endif
#endif

/** Register a stack with valgrind. @return an id for deregistering */
static inline unsigned vt_annotate_stack_register(void *lo, void *hi)
{
#ifdef VT_ANNOTATE_VALGRIND
    return VALGRIND_STACK_REGISTER(lo, hi);
#else
    (void)lo;
    (void)hi;
    return 0;
#endif
}

/** Forget a stack registered with vt_annotate_stack_register(). */
static inline void vt_annotate_stack_deregister(unsigned id)
{
#ifdef VT_ANNOTATE_VALGRIND
    VALGRIND_STACK_DEREGISTER(id);
#else
    (void)id;
#endif
}

/** A stack mapping [lo, lo+size) is about to be unmapped: the frames it
 *  held may have left ASan's poison on it, which a later mapping at the
 *  same address must not inherit. */
static inline void vt_annotate_stack_unmapping(void *lo, size_t size)
{
#ifdef VT_ANNOTATE_ASAN
    ASAN_UNPOISON_MEMORY_REGION(lo, size);
#else
    (void)lo;
    (void)size;
#endif
}

/** About to jump to the stack [bottom, bottom+size). */
static inline void vt_annotate_switch_start(void **fake_stack_save,
                                            const void *bottom, size_t size)
{
#ifdef VT_ANNOTATE_ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
    (void)fake_stack_save;
    (void)bottom;
    (void)size;
#endif
}

/** Just landed; learn the bounds of the stack we came from. */
static inline void vt_annotate_switch_finish(void *fake_stack_save,
                                             const void **bottom_old,
                                             size_t *size_old)
{
#ifdef VT_ANNOTATE_ASAN
    __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
#else
    (void)fake_stack_save;
    (void)bottom_old;
    (void)size_old;
#endif
}

#endif /* VT_ANNOTATE_H */
