/*
 * ports.h - the local HTTP port of each service, the one table of them:
 * 18081 upward in the order ingest, inventory, payment, notify, refund,
 * analytics. Services take their default OMS_HTTP_ADDR port from here,
 * omsctl its default service URLs; scripts/stack.sh (SERVICES and
 * HTTP_PORT_BASE) and the Makefile's help follow the same order, and
 * tests/deploy/test_ports.sh fails when they differ from this file.
 */
#ifndef OMS_PORTS_H
#define OMS_PORTS_H

#define OMS_PORT_INGEST 18081
#define OMS_PORT_INVENTORY 18082
#define OMS_PORT_PAYMENT 18083
#define OMS_PORT_NOTIFY 18084
#define OMS_PORT_REFUND 18085
#define OMS_PORT_ANALYTICS 18086

/* "http://127.0.0.1:<port>" as a string literal. */
#define OMS_LOCAL_URL(port) "http://127.0.0.1:" OMS_PORT_TEXT_(port)
#define OMS_PORT_TEXT_(port) OMS_PORT_TEXT__(port)
#define OMS_PORT_TEXT__(port) #port

#endif
