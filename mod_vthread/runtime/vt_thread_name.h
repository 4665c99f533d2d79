/**
 * @file  vt_thread_name.h
 * @brief Names mod_vthread's own threads, so that `top -H`, `ps -L`,
 *        perf and gdb tell a carrier from an MPM worker.
 */
#ifndef VT_THREAD_NAME_H
#define VT_THREAD_NAME_H

/**
 * Name the calling thread "vt-<role>" or "vt-<role>-<index>".
 * @param role  short role, e.g. "carrier"; the whole name is cut to the
 *              kernel's 15 characters
 * @param index the thread's index within its role, or -1 for none
 * @remark Does nothing where the platform cannot name threads.
 */
void vt_thread_name(const char *role, int index);

#endif /* VT_THREAD_NAME_H */
