/*
 * trace.h - one order's journey, read back from the streams: every event
 * that names the order, in causal order, with a one-line summary of the
 * fields that matter. Shared by `omsctl trace` and `omsctl console`.
 */
#ifndef OMS_TRACE_H
#define OMS_TRACE_H

#include "js.h"
#include "oms.h"

#include <jansson.h>

#define TRACE_ERR_LEN 256

/* Reads ORDERS, STOCK, PAYMENTS, REFUNDS and IMPORTS, and notify's history
 * of the order, and builds
 *   {"order_id", "found": bool, "events": [{"time_ms", "since_created_ms",
 *    "stream", "seq", "subject", "type", "producer", "event_id",
 *    "causation_id", "summary", "event"}...], "note": text|null,
 *    "notifications_note": text|null, "retention_ms"}
 * into *out (caller decrefs). "note" says why nothing (or no order.created)
 * was found: never there, or aged out with the streams' retention. Borrows
 * c. On a NATS error returns OMS_ENATS with the reason in err. */
oms_status trace_collect(js_conn *c, const char *order_id, json_t **out, char err[TRACE_ERR_LEN]);

/* An order's notifications from notify's history (trace_notify.c): GET
 * /notifications?order_id= into *list (notify's array; caller decrefs).
 * When notify does not answer returns OMS_EIO and says so in note. */
oms_status trace_fetch_notifications(const char *order_id, json_t **list, char *note,
                                     size_t note_len);

/* One notification of notify's list as a trace entry: subject
 * "notification.<channel>", producer notify, caused by the event it
 * notified of. Caller decrefs; NULL when out of memory. Borrows n. */
json_t *trace_notification_record(const json_t *n);

/* Appends a trace entry for every notification of list to events. */
void trace_add_notifications(json_t *events, const json_t *list);

/* The summary of one decoded event of subject (the fields that matter),
 * into out: "2 lines: SKU-1 x2, SKU-2 x1; total 12.00 USD". Borrows all. */
void trace_summary(const char *subject, const json_t *event, char *out, size_t out_len);

#endif
