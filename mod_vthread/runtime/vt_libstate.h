/**
 * @file  vt_libstate.h
 * @brief What a library keeps per thread and a fiber must keep as its own
 *        across a switch: OpenSSL's error queue.
 *
 * Fibers on one carrier share the thread, so a per-thread error queue is
 * shared too: a fiber parked inside SSL_read (its BIO waits on a socket)
 * could resume to find another fiber's error queued, and mod_ssl, which
 * reads the queue after SSL_read/SSL_write, would fail the wrong
 * connection. So while a fiber is switched out its queued errors are kept
 * with it, and the thread's queue is empty for the next fiber.
 *
 * OpenSSL is not linked: its functions are looked up in the process when
 * vt_libstate_enable() is called (libcrypto loaded by mod_ssl, say); if
 * it is not there, nothing is done and a switch pays one branch. Leaf of
 * the runtime: it knows nothing of fibers but the slot they give it.
 */
#ifndef VT_LIBSTATE_H
#define VT_LIBSTATE_H

/** Non-zero once OpenSSL's queue is kept per fiber. */
extern int vt_libstate_on;

/**
 * Look OpenSSL 3's error functions up in the loaded objects; if found,
 * keep its queue per fiber from now on. Call before fibers run (child
 * init); idempotent.
 * @return 1 if on
 */
int vt_libstate_enable(void);

/** Switching out: move the thread's queued errors to *@a slot. */
void vt_libstate_save(void **slot);

/** Switched in again: put *@a slot's errors back on the thread's queue. */
void vt_libstate_restore(void **slot);

/** A fiber has ended: drop what it left queued, on the thread or kept. */
void vt_libstate_end(void **slot);

#endif /* VT_LIBSTATE_H */
