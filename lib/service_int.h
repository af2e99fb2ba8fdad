/*
 * service_int.h - what lib/service.c and lib/service_dlq.c share and no
 * service sees: the dead-letter routes service.c registers, and the lookup
 * of the consumer a dead letter's subject belongs to, which a retry needs.
 */
#ifndef OMS_SERVICE_INT_H
#define OMS_SERVICE_INT_H

#include "service.h"

/* Registers GET /dead-letters and POST /dead-letters/{id}/retry on http
 * (service_dlq.c). svc and http are borrowed. */
void service_dlq_routes(oms_service *svc, http_server *http);

/* The consumer of svc whose filter matches subject, or NULL (service.c).
 * Borrowed from the service definition. */
const consumer_spec *service_consumer_for(oms_service *svc, const char *subject);

#endif
