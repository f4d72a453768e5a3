/* metrics_http.h: the Prometheus endpoint of kvnode (`--metrics-addr HOST:PORT`): GET
 * /metrics answers the registry of metrics.h and the hint gauges of the coordinator, in the
 * text format, from libmicrohttpd's own thread. Only this file and metrics_http.c include
 * libmicrohttpd. */
#ifndef KV_METRICS_HTTP_H
#define KV_METRICS_HTTP_H

#include <netinet/in.h>

#include "coord.h"
#include "driver.h"
#include "kv_err.h"
#include "metrics.h"

typedef struct kv_metrics_http kv_metrics_http_t;

/* Parses "HOST:PORT" (an IPv4 address or a name that resolves to one; port 1..65535) into
 * *out. KV_EINVAL with a sentence naming text otherwise. */
kv_err kv_metrics_http_parse(const char *text, struct sockaddr_in *out, kv_status_t *st);

/* Serves /metrics on addr (text as given, for messages; both borrowed for the call). m, coord
 * and driver (whose lock covers reading coord) are borrowed and must outlive the server; self
 * is this node's config index.
 * KV_EIO with "cannot serve metrics on ADDR: why" when the address cannot be bound. */
kv_err kv_metrics_http_start(const char *text, const struct sockaddr_in *addr, kv_metrics_t *m,
                             kv_coord_t *coord, kv_driver_t *driver, uint32_t self,
                             kv_metrics_http_t **out, kv_status_t *st);
/* Stops serving (waits for a scrape in progress) and frees h. h may be NULL. */
void kv_metrics_http_stop(kv_metrics_http_t *h);

#endif
