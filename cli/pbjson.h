/*
 * pbjson.h - protobuf-c messages as JSON (jansson), by walking the message
 * descriptor, plus the table of the contract's event types (the Oms-Type
 * header, e.g. "oms.v1.OrderCreated") and their descriptors.
 *
 * Field names are the .proto names (snake_case, as in docs/events.md); every
 * field of a proto3 message is printed, defaults included, so a line has the
 * same shape whatever the values. 64-bit integers are JSON integers; bytes
 * are base64; enums are their value names.
 *
 * Not omsctl-specific: a candidate for lib/.
 */
#ifndef OMS_PBJSON_H
#define OMS_PBJSON_H

#include "oms.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* The descriptor of a contract message by its full name ("oms.v1.OrderCreated"),
 * or NULL when unknown. */
const ProtobufCMessageDescriptor *pbjson_descriptor(const char *type_name);

/* Converts msg into a new JSON object (caller decrefs); NULL when out of memory. */
json_t *pbjson_from_message(const ProtobufCMessage *msg);

/* Decodes data as type_name into JSON. Unknown type or undecodable data gives
 * {"raw_base64": "..."} (plus "error" when the type was known). Caller decrefs. */
json_t *pbjson_decode(const char *type_name, const void *data, size_t len);

/* Base64 (RFC 4648, padded) of data as a new JSON string; caller decrefs. */
json_t *pbjson_base64(const void *data, size_t len);

#endif
