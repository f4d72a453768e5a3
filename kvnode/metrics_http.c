/* metrics_http.c: the /metrics endpoint on libmicrohttpd (see metrics_http.h).
 *
 * The listening socket is made here (socket, SO_REUSEADDR, bind, listen) and handed to
 * libmicrohttpd, so a bind failure is reported with its errno's sentence, which
 * MHD_start_daemon alone does not give. libmicrohttpd runs one internal polling thread; each
 * scrape renders the whole text into memory (open_memstream) and hands the buffer over. */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hints.h"
#include "log.h"

struct kv_metrics_http {
  struct MHD_Daemon *daemon;
  int fd;
  kv_metrics_t *metrics;
  kv_coord_t *coord;
  kv_driver_t *driver;          /* held while reading coord */
  uint32_t self;
};

kv_err kv_metrics_http_parse(const char *text, struct sockaddr_in *out, kv_status_t *st) {
  const char *colon = strrchr(text, ':');
  char host[256];
  if (!colon || colon == text || (size_t)(colon - text) >= sizeof host)
    return kv_status_set(st, KV_EINVAL, "--metrics-addr must be HOST:PORT, not '%s'", text);
  memcpy(host, text, (size_t)(colon - text));
  host[colon - text] = '\0';
  char *end;
  errno = 0;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (!colon[1] || *end || errno || colon[1] == '-' || port < 1 || port > 65535)
    return kv_status_set(st, KV_EINVAL, "--metrics-addr '%s': the port must be 1 to 65535", text);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0 || !res)
    return kv_status_set(st, KV_EINVAL, "--metrics-addr '%s': cannot resolve '%s' to an IPv4 "
                         "address: %s", text, host, gai_strerror(rc));
  *out = *(const struct sockaddr_in *)res->ai_addr;
  out->sin_port = htons((uint16_t)port);
  freeaddrinfo(res);
  return KV_OK;
}

static bool hints_of(void *arg, uint32_t node, kv_metrics_hints_t *out) {
  kv_metrics_http_t *h = arg;
  if (node == h->self) return false;
  kv_hint_stats_t s;
  kv_driver_lock(h->driver);
  kv_coord_hint_stats(h->coord, node, &s);
  kv_driver_unlock(h->driver);
  *out = (kv_metrics_hints_t){s.pending, s.bytes, s.delivered, s.dropped};
  return true;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, char *body,
                                   size_t len, enum MHD_ResponseMemoryMode mode) {
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
  if (!r) {
    if (mode == MHD_RESPMEM_MUST_FREE) free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  kv_metrics_http_t *h = cls;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    static char msg[] = "only GET is served here\n";
    return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, msg, strlen(msg),
                       MHD_RESPMEM_PERSISTENT);
  }
  if (strcmp(url, "/metrics") != 0) {
    static char msg[] = "not found; the metrics are at /metrics\n";
    return answer_text(conn, MHD_HTTP_NOT_FOUND, msg, strlen(msg), MHD_RESPMEM_PERSISTENT);
  }
  char *body = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&body, &len);
  if (!f) return MHD_NO;
  kv_metrics_render(h->metrics, f, hints_of, h);
  if (fclose(f) != 0) {
    free(body);
    return MHD_NO;
  }
  return answer_text(conn, MHD_HTTP_OK, body, len, MHD_RESPMEM_MUST_FREE);
}

/* A listening TCP socket on addr; -1 with errno otherwise. */
static int listen_on(const struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)addr, sizeof *addr) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

kv_err kv_metrics_http_start(const char *text, const struct sockaddr_in *addr, kv_metrics_t *m,
                             kv_coord_t *coord, kv_driver_t *driver, uint32_t self,
                             kv_metrics_http_t **out, kv_status_t *st) {
  kv_metrics_http_t *h = calloc(1, sizeof *h);
  if (!h) return kv_status_set(st, KV_ENOMEM, "out of memory starting the metrics endpoint");
  *h = (kv_metrics_http_t){.fd = -1, .metrics = m, .coord = coord, .driver = driver,
                           .self = self};
  h->fd = listen_on(addr);
  if (h->fd < 0) {
    int e = errno;
    free(h);
    return kv_status_set(st, KV_EIO, "cannot serve metrics on %s: %s", text, strerror(e));
  }
  h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                               on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
  if (!h->daemon) {
    close(h->fd);
    free(h);
    return kv_status_set(st, KV_EIO, "cannot serve metrics on %s: libmicrohttpd would not start",
                         text);
  }
  *out = h;
  return KV_OK;
}

void kv_metrics_http_stop(kv_metrics_http_t *h) {
  if (!h) return;
  MHD_stop_daemon(h->daemon); /* closes the listening socket it was given */
  free(h);
}
