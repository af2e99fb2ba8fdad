/*
 * ingest_events.c - building the events ingest publishes (through the outbox).
 */
#include "ingest.h"

#include <string.h>

#define PRODUCER "ingest"

bool ingest_is_live(const char *import_id)
{
    return strncmp(import_id, "live:", 5) == 0;
}

oms_status ingest_emit_rejected(outbox_batch *ob, const char *import_id, int row,
                                const char *order_id, const char *field, const char *reason,
                                const char *causation_id)
{
    Oms__V1__ImportRejected ev = OMS__V1__IMPORT_REJECTED__INIT;
    Oms__V1__EventMeta meta;
    char id[37];
    const char *public_id = ingest_is_live(import_id) ? "" : import_id;
    outbox_meta_init(&meta, id, PRODUCER, *public_id ? public_id : order_id, causation_id);
    ev.meta = &meta;
    ev.import_id = (char *)public_id;
    ev.row = row;
    ev.order_id = (char *)order_id;
    ev.field = (char *)field;
    ev.reason = (char *)reason;
    return outbox_batch_add_message(ob, "import.rejected", id, &ev.base);
}
