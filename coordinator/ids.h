/* ids.h: the one namespace of message ids (DESIGN section 3).
 *
 * Every message a node's core sends another carries a 64-bit id that its answer echoes; the
 * id alone says which part of the core the answer belongs to and where in that part, so an
 * answer to something already finished (a stale generation) or never asked (a malformed id)
 * is recognized and ignored. The top bits name the owner, tested in this order:
 *
 *   bit 63  hinted handoff (hints.c)   KV_HINT_ID_BIT  | gen << 16 | handoff index
 *   bit 62  anti-entropy (exchange.c)  KV_AAE_ID_BIT   | gen << 32 | kind << 28 | index
 *   bit 61  tombstone reaping (reaper.c) KV_REAP_ID_BIT | step << 32 | gen << 16 | job << 8 | k
 *   bit 60  a forwarder's relay (coord_relay.c) KV_RELAY_ID_BIT | gen << 24 | relay << 8 | k
 *   bit 59  ring gossip and ownership handoff (ownership.c) KV_RING_ID_BIT | kind << 56 |
 *           gen << 24 | index
 *   none    a request slot (coord_slots.c)  slot << 24 | gen << 8 | target (| 0x80: a repair)
 *
 * Owners are told apart in that order, so an owner's fields may use the bits of the owners
 * tested after it (an exchange's generation runs up to bit 61); a slot id's fields stay below
 * bit 59. */
#ifndef KV_IDS_H
#define KV_IDS_H

#include <stdint.h>

#define KV_HINT_ID_BIT (1ull << 63)
#define KV_AAE_ID_BIT (1ull << 62)
#define KV_REAP_ID_BIT (1ull << 61)
#define KV_RELAY_ID_BIT (1ull << 60)
#define KV_RING_ID_BIT (1ull << 59)

/* Hinted handoff: the handoff's generation and its index in the table. */
#define KV_HINT_ID_GEN_SHIFT 16u

/* Anti-entropy: the exchange's generation, the kind of message and the index of its step. */
#define KV_AAE_ID_GEN_SHIFT 32u
#define KV_AAE_ID_GEN_MASK 0x3FFFFFFFu
#define KV_AAE_ID_KIND_SHIFT 28u
#define KV_AAE_ID_INDEX_MASK 0x0FFFFFFFu

/* Reaping: the job's step, generation and index, and the primary asked. */
#define KV_REAP_ID_STEP_SHIFT 32u
#define KV_REAP_ID_GEN_SHIFT 16u
#define KV_REAP_ID_JOB_SHIFT 8u

/* Relays: the relay's generation and index, and the replica relayed to. */
#define KV_RELAY_ID_INDEX_SHIFT 8u
#define KV_RELAY_ID_GEN_SHIFT 24u

/* Ring gossip and ownership handoff: the kind (gossip or a streamed record), the round's
 * generation and the record's index in its chunk. */
#define KV_RING_ID_KIND_SHIFT 56u
#define KV_RING_ID_GEN_SHIFT 24u

/* Request slots: the slot's index and generation, and the target (with the repair flag). */
#define KV_SLOT_ID_TARGET_BITS 8u
#define KV_SLOT_ID_GEN_BITS 16u
#define KV_SLOT_ID_REPAIR 0x80u

#endif
