/* check_notify.c: the service manager notifications of kvnode/notify.c, received on sockets
 * the test binds as systemd would (a path, and a name in the abstract namespace), and each
 * error NOTIFY_SOCKET can cause, with its sentence. */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/* A datagram socket bound to name ("/path", or "@name" for the abstract namespace). */
static int bind_listener(const char *name) {
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  ck_assert_int_ge(fd, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  size_t len = strlen(name);
  memcpy(sun.sun_path, name, len);
  if (name[0] == '@') sun.sun_path[0] = '\0';
  socklen_t bytes = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, bytes), 0);
  return fd;
}

/* The next datagram on fd, as a string (the test's sockets are blocking). */
static void receive(int fd, char *buf, size_t size) {
  ssize_t n = recv(fd, buf, size - 1, 0);
  ck_assert_int_ge(n, 0);
  buf[n] = '\0';
}

static kv_err notify_with(const char *socket_name, const char *state, kv_status_t *st) {
  kv_status_clear(st);
  if (socket_name) setenv("NOTIFY_SOCKET", socket_name, 1);
  else unsetenv("NOTIFY_SOCKET");
  kv_err e = kv_notify(state, st);
  unsetenv("NOTIFY_SOCKET");
  return e;
}

START_TEST(test_notify_nobody) {
  kv_status_t st;
  ck_assert_int_eq(notify_with(NULL, "READY=1", &st), KV_OK);
  ck_assert_int_eq(notify_with("", "READY=1", &st), KV_OK);
}
END_TEST

START_TEST(test_notify_path) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/tmp/check_notify.%d", (int)getpid());
  unlink(path);
  int fd = bind_listener(path);
  kv_status_t st;
  ck_assert_int_eq(notify_with(path, "READY=1\nSTATUS=serving", &st), KV_OK);
  receive(fd, buf, sizeof buf);
  ck_assert_str_eq(buf, "READY=1\nSTATUS=serving");
  ck_assert_int_eq(notify_with(path, "STOPPING=1", &st), KV_OK);
  receive(fd, buf, sizeof buf);
  ck_assert_str_eq(buf, "STOPPING=1");
  close(fd);
  unlink(path);
}
END_TEST

START_TEST(test_notify_abstract) {
  char name[64], buf[256];
  snprintf(name, sizeof name, "@check_notify.%d", (int)getpid());
  int fd = bind_listener(name);
  kv_status_t st;
  ck_assert_int_eq(notify_with(name, "READY=1", &st), KV_OK);
  receive(fd, buf, sizeof buf);
  ck_assert_str_eq(buf, "READY=1");
  close(fd);
}
END_TEST

START_TEST(test_notify_errors) {
  kv_status_t st;
  ck_assert_int_eq(notify_with("run/notify", "READY=1", &st), KV_EINVAL);
  ck_assert_str_eq(st.msg, "NOTIFY_SOCKET 'run/notify' is not an absolute path or @name of at "
                           "most 107 bytes");
  char long_path[200];
  memset(long_path, 'a', sizeof long_path - 1);
  long_path[0] = '/';
  long_path[sizeof long_path - 1] = '\0';
  ck_assert_int_eq(notify_with(long_path, "READY=1", &st), KV_EINVAL);
  char path[64], want[128];
  snprintf(path, sizeof path, "/tmp/check_notify.none.%d", (int)getpid());
  unlink(path);
  ck_assert_int_eq(notify_with(path, "READY=1", &st), KV_EIO);
  snprintf(want, sizeof want, "cannot notify %s: No such file or directory", path);
  ck_assert_str_eq(st.msg, want);
}
END_TEST

Suite *notify_suite(void) {
  Suite *s = suite_create("notify");
  TCase *tc = tcase_create("notify");
  tcase_add_test(tc, test_notify_nobody);
  tcase_add_test(tc, test_notify_path);
  tcase_add_test(tc, test_notify_abstract);
  tcase_add_test(tc, test_notify_errors);
  suite_add_tcase(s, tc);
  return s;
}
