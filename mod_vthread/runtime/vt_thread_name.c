/* Thread names: see vt_thread_name.h. */
#include "vt_thread_name.h"

#include <stdio.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

void vt_thread_name(const char *role, int index)
{
#ifdef __linux__
    char name[16]; /* the kernel's TASK_COMM_LEN, NUL included */
    if (index >= 0) {
        snprintf(name, sizeof(name), "vt-%s-%d", role, index);
    }
    else {
        snprintf(name, sizeof(name), "vt-%s", role);
    }
    /* The calling thread only, unlike pthread_setname_np on another one. */
    prctl(PR_SET_NAME, name, 0, 0, 0);
#else
    (void)role;
    (void)index;
#endif
}
