/*
 * poison.c - publishes one message that no service can decode to a subject
 * of the event contract, so that the dashboard test has a real dead letter:
 *   poison SUBJECT MSG_ID
 * Connects with OMS_NATS_URL / OMS_NATS_USER / OMS_NATS_PASSWORD (.oms/env);
 * exits 0 once JetStream stored it, 1 otherwise.
 */
#include "js.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    static const char garbage[] = "\xff\x01not a protobuf event";
    js_conn *js = NULL;
    natsMsg *msg = NULL;
    int rc = 1;

    if (argc != 3 || getenv("OMS_NATS_URL") == NULL) {
        fprintf(stderr, "usage: OMS_NATS_URL=... poison SUBJECT MSG_ID\n");
        return 2;
    }
    if (js_connect(&js, getenv("OMS_NATS_URL"), getenv("OMS_NATS_USER"),
                   getenv("OMS_NATS_PASSWORD"), "poison") != OMS_OK)
        goto out;
    if (natsMsg_Create(&msg, argv[1], NULL, garbage, (int)sizeof garbage - 1) != NATS_OK)
        goto out;
    /* The message id makes a second run with the same id a JetStream
     * duplicate, not a second dead letter. */
    natsMsgHeader_Set(msg, "Nats-Msg-Id", argv[2]);
    if (js_publish_sync(js, msg) != OMS_OK)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "poison: could not publish to %s (see the log above)\n", argv[1]);
    natsMsg_Destroy(msg);
    js_conn_destroy(js);
    return rc;
}
