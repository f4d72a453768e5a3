/* notify.h: telling a service manager how the node is doing, by systemd's notification
 * protocol (sd_notify(3)), without libsystemd. Under a unit with Type=notify, systemd sets
 * NOTIFY_SOCKET to a unix datagram socket (a path, or "@name" in the abstract namespace);
 * each notification is one datagram of "VAR=value" lines ("READY=1", "STOPPING=1",
 * "STATUS=serving on ..."). Without NOTIFY_SOCKET there is nobody to tell, and nothing is
 * sent. */
#ifndef KV_NOTIFY_H
#define KV_NOTIFY_H

#include "kv_err.h"

/* Sends state (borrowed for the call; "READY=1\nSTATUS=..." for several lines) to the socket
 * NOTIFY_SOCKET names, or does nothing when it is unset or empty. Errors: KV_EINVAL when
 * NOTIFY_SOCKET is not an absolute path or "@name", or is too long for a unix address;
 * KV_EIO when the datagram cannot be sent (st names the socket and errno's sentence). */
kv_err kv_notify(const char *state, kv_status_t *st);

#endif
