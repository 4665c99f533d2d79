/* A second target for the hook tests (check_vt_hook_got.c): loaded only
 * through target_dlopen() after the hooks are installed, to show that a
 * dlopen through a patched object patches what it loads. */
#include <unistd.h>

__attribute__((visibility("default")))
ssize_t target2_read(int fd, void *buf, size_t len)
{
    return read(fd, buf, len);
}
