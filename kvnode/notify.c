/* notify.c: sd_notify(3) in a few system calls (see notify.h).
 *
 * One socket per notification: the node notifies twice in its life (ready, stopping), so
 * keeping a descriptor open would only be one more thing to close. The datagram goes out
 * with MSG_NOSIGNAL, and a full socket buffer is an error rather than a wait
 * (MSG_DONTWAIT): a service manager that stopped reading must not hold the node up. */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

kv_err kv_notify(const char *state, kv_status_t *st) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !path[0]) return KV_OK;
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof sun.sun_path)
    return kv_status_set(st, KV_EINVAL, "NOTIFY_SOCKET '%s' is not an absolute path or "
                         "@name of at most %zu bytes", path, sizeof sun.sun_path - 1);
  memcpy(sun.sun_path, path, len);
  if (path[0] == '@') sun.sun_path[0] = '\0'; /* the abstract namespace; no NUL ends it */
  socklen_t sun_bytes = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                    (path[0] == '/'));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return kv_status_set(st, KV_EIO, "cannot notify %s: socket: %s", path, strerror(errno));
  ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
                        (const struct sockaddr *)&sun, sun_bytes);
  int e = errno;
  close(fd);
  if (sent < 0) return kv_status_set(st, KV_EIO, "cannot notify %s: %s", path, strerror(e));
  return KV_OK;
}
