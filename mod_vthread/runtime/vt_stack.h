/**
 * @file  vt_stack.h
 * @brief Fiber stacks: mmap'd, a PROT_NONE guard page below, lazily
 *        committed, cached per carrier.
 *
 * A stack cache belongs to one carrier and is used only from its thread.
 * Released stacks are kept for reuse. vt_stack_cache_trim(), which the
 * carrier calls a few times a second, gives the pages of all but the
 * `hot_max` most recently released back to the kernel (madvise), so RSS
 * follows the live fiber count while the mappings stay reusable; trimming
 * on every release would cost a TLB shoot-down per ended fiber. A trimmed
 * ("cold") stack still holds its top page (its header) and two mappings,
 * so after a burst of 10,000 fibers a child kept 40 MB and 20,000
 * mappings for good: vt_stack_cache_unmap_cold() unmaps the oldest cold
 * stacks beyond `cold_max`, a few per call. Another thread that reads a
 * running stack's header (the watchdog) must make the carrier skip that
 * call while it reads (vt_carrier.h, watch_reading): a stack is cold only
 * after it stopped running and one trim passed, so it is never one that
 * thread can be reading otherwise.
 */
#ifndef VT_STACK_H
#define VT_STACK_H

#include <apr.h>
#include <apr_errno.h>

/** Smallest usable stack size accepted. */
#define VT_STACK_MIN_SIZE (16 * 1024)
/** Largest usable stack size accepted. */
#define VT_STACK_MAX_SIZE (64 * 1024 * 1024)
/** Usable stack size when none is configured. */
#define VT_STACK_DEFAULT_SIZE (256 * 1024)
/** Bytes of a fiber's label a stack header keeps, with the NUL. */
#define VT_STACK_LABEL_MAX 160

/** One fiber stack. The struct itself lives at the very top of the
 *  stack's own mapping (the stack grows down from just below it), so it
 *  costs no page of its own and is readable as long as the cache lives. */
typedef struct vt_stack_t {
    char *base;         /**< lowest address of the mapping (guard page) */
    apr_size_t mapped;  /**< bytes mapped: guard, then stack and this */
    char *lo;           /**< lowest usable byte (just above the guard) */
    char *hi;           /**< one past the highest usable byte */
    int hot;            /**< pages still committed (not madvised) */
    struct vt_stack_t *next;     /**< cache free-list links */
    struct vt_stack_t *prev;
    struct vt_stack_t *all_next; /**< list of every mapping, for destroy */
    struct vt_stack_t *all_prev;
    unsigned valgrind_id;        /**< its registration with valgrind */
    apr_uint64_t fiber_id;       /**< fiber using it (for reports) */
    char label[VT_STACK_LABEL_MAX];             /**< that fiber's label (for reports) */
} vt_stack_t;

/** A carrier's cache of released stacks. */
typedef struct vt_stack_cache_t {
    apr_size_t size;     /**< usable bytes per stack (page multiple) */
    apr_size_t guard;    /**< guard bytes below each stack */
    apr_uint32_t hot_max; /**< released stacks kept committed */
    vt_stack_t *free;    /**< released stacks, most recent first; the
                              committed ones form its prefix */
    vt_stack_t *last_hot; /**< last of that prefix, or NULL */
    vt_stack_t *free_tail; /**< oldest released stack, or NULL */
    apr_uint32_t cold_max; /**< cold stacks kept mapped (hot_max) */
    apr_uint32_t nfree;  /**< length of @a free */
    apr_uint32_t nhot;   /**< of those, still committed */
    vt_stack_t *all;     /**< every stack mapped (for destroy) */
    apr_uint32_t nall;   /**< length of @a all */
} vt_stack_cache_t;

/** Page size, cached. */
apr_size_t vt_stack_page_size(void);

/**
 * Round a requested stack size up to whole pages, within bounds.
 * @return APR_SUCCESS or APR_EINVAL if outside
 *         VT_STACK_MIN_SIZE..VT_STACK_MAX_SIZE
 */
apr_status_t vt_stack_size_round(apr_size_t requested, apr_size_t *out);

/**
 * Prepare an empty cache.
 * @param size usable bytes per stack (already rounded)
 * @param hot_max how many released stacks keep their pages
 */
void vt_stack_cache_init(vt_stack_cache_t *sc, apr_size_t size,
                         apr_uint32_t hot_max);

/**
 * Take a stack: the most recently released one, or a new mapping.
 * @return APR_SUCCESS or the errno of mmap/mprotect
 */
apr_status_t vt_stack_get(vt_stack_cache_t *sc, vt_stack_t **st);

/** Give a stack back to its cache (its pages stay committed until the
 *  next trim). */
void vt_stack_put(vt_stack_cache_t *sc, vt_stack_t *st);

/**
 * Give back the pages of released stacks beyond the hot_max most recent.
 * @return how many stacks were trimmed
 */
apr_uint32_t vt_stack_cache_trim(vt_stack_cache_t *sc);

/**
 * Unmap the oldest released stacks whose pages were given back (cold),
 * beyond the `cold_max` most recent ones, at most @a max of them.
 * @return how many stacks were unmapped
 */
apr_uint32_t vt_stack_cache_unmap_cold(vt_stack_cache_t *sc,
                                       apr_uint32_t max);

/** Cold stacks beyond `cold_max`: what vt_stack_cache_unmap_cold() would
 *  unmap without a limit. */
apr_uint32_t vt_stack_cache_cold_excess(const vt_stack_cache_t *sc);

/** Bytes of released stacks that are still committed (upper bound). */
apr_size_t vt_stack_cache_hot_bytes(const vt_stack_cache_t *sc);

/** Unmap every stack. All must have been put back. */
void vt_stack_cache_destroy(vt_stack_cache_t *sc);

/** Is @a addr inside @a st's guard page? */
int vt_stack_in_guard(const vt_stack_t *st, const void *addr);

#endif /* VT_STACK_H */
