/*
 * pbjson.c - protobuf-c message -> jansson, generically.
 *
 * protobuf-c lays a message out as a C struct described by its descriptor:
 * each field has an offset, and for repeated fields a count at
 * quantifier_offset; optional scalars have a has_ flag there, oneof members
 * the case number. Reading through the descriptor keeps this file free of
 * any knowledge of the contract beyond the table of known types.
 */
#include "pbjson.h"

#include "oms_events.pb-c.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* Every message of proto/oms_events.proto, in its order; add new ones here
 * (tests/cli/test_pbjson.c reads the .proto and fails on a missing one).
 * protobuf-c generates no file descriptor to list them from. */
static const ProtobufCMessageDescriptor *const KNOWN[] = {
    &oms__v1__event_meta__descriptor,       &oms__v1__order_line__descriptor,
    &oms__v1__order_created__descriptor,    &oms__v1__import_rejected__descriptor,
    &oms__v1__import_completed__descriptor, &oms__v1__product_upserted__descriptor,
    &oms__v1__stock_reserved__descriptor,   &oms__v1__stock_rejected__descriptor,
    &oms__v1__payment_settled__descriptor,  &oms__v1__stock_committed__descriptor,
    &oms__v1__stock_released__descriptor,   &oms__v1__order_paid__descriptor,
    &oms__v1__order_failed__descriptor,     &oms__v1__refund_line__descriptor,
    &oms__v1__refund_requested__descriptor, &oms__v1__refund_processed__descriptor,
    &oms__v1__refund_rejected__descriptor,  &oms__v1__order_refunded__descriptor,
};

const ProtobufCMessageDescriptor *pbjson_descriptor(const char *type_name)
{
    if (type_name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
        if (strcmp(KNOWN[i]->name, type_name) == 0)
            return KNOWN[i];
    return NULL;
}

json_t *pbjson_base64(const void *data, size_t len)
{
    if (len == 0)
        return json_string("");
    if (len > (size_t)INT32_MAX / 2)
        return NULL;
    unsigned char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    int n = EVP_EncodeBlock(out, data, (int)len);
    json_t *s = json_stringn((const char *)out, (size_t)n);
    free(out);
    return s;
}

/* Bytes of one element of a repeated field in the C struct. */
static size_t element_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return sizeof(int64_t);
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

static json_t *real_value(double d)
{
    /* JSON has no NaN or infinity. */
    return isfinite(d) ? json_real(d) : json_null();
}

static json_t *enum_value(const ProtobufCEnumDescriptor *ed, int v)
{
    const ProtobufCEnumValue *ev = ed ? protobuf_c_enum_descriptor_get_value(ed, v) : NULL;
    /* A value newer than our descriptor stays visible as its number. */
    return ev ? json_string(ev->name) : json_integer(v);
}

/* One value of field fd stored at p. */
static json_t *value_json(const ProtobufCFieldDescriptor *fd, const void *p)
{
    switch (fd->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t u = *(const uint64_t *)p;
        /* json_int_t is signed: keep the exact value as text beyond it. */
        if (u <= (uint64_t)INT64_MAX)
            return json_integer((json_int_t)u);
        char text[24];
        snprintf(text, sizeof text, "%llu", (unsigned long long)u);
        return json_string(text);
    }
    case PROTOBUF_C_TYPE_FLOAT: return real_value(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE: return real_value(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: return enum_value(fd->descriptor, *(const int *)p);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p ? *(char *const *)p : "";
        /* Strings that are not UTF-8 would make jansson refuse; show bytes. */
        json_t *j = json_string(s);
        return j ? j : pbjson_base64(s, strlen(s));
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return pbjson_base64(b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? pbjson_from_message(m) : json_null();
    }
    }
    return json_null();
}

static json_t *repeated_json(const ProtobufCFieldDescriptor *fd, const char *base)
{
    size_t n = *(const size_t *)(base + fd->quantifier_offset);
    const char *items = *(char *const *)(base + fd->offset);
    size_t size = element_size(fd->type);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *v = value_json(fd, items + i * size);
        if (v == NULL || json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

/* Whether field fd carries a value in the message at base. */
static bool field_present(const ProtobufCFieldDescriptor *fd, const char *base)
{
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
    if (fd->label != PROTOBUF_C_LABEL_OPTIONAL)
        return true;
    /* Optional strings and messages are present when non-NULL; other
     * optional types have a has_ flag. */
    if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)(base + fd->offset) != NULL;
    return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
}

json_t *pbjson_from_message(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    json_t *obj = json_object();

    for (unsigned i = 0; obj != NULL && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->label != PROTOBUF_C_LABEL_REPEATED && !field_present(fd, base))
            continue;
        json_t *v = fd->label == PROTOBUF_C_LABEL_REPEATED ? repeated_json(fd, base)
                                                           : value_json(fd, base + fd->offset);
        if (v == NULL || json_object_set_new(obj, fd->name, v) != 0) {
            json_decref(obj);
            obj = NULL;
        }
    }
    return obj;
}

static json_t *raw_json(const void *data, size_t len, const char *error)
{
    json_t *obj = json_object();
    json_t *b64 = pbjson_base64(data, len);
    if (obj == NULL || b64 == NULL || json_object_set_new(obj, "raw_base64", b64) != 0) {
        json_decref(obj);
        return NULL;
    }
    if (error != NULL)
        json_object_set_new(obj, "error", json_string(error));
    return obj;
}

json_t *pbjson_decode(const char *type_name, const void *data, size_t len)
{
    const ProtobufCMessageDescriptor *d = pbjson_descriptor(type_name);
    if (d == NULL)
        return raw_json(data, len, NULL);
    ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, len, data);
    if (msg == NULL)
        return raw_json(data, len, "payload does not decode as this type");
    json_t *obj = pbjson_from_message(msg);
    protobuf_c_message_free_unpacked(msg, NULL);
    return obj;
}
