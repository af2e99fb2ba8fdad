/*
 * consumer_msg.c - a fetched message and its boundary checks
 * (consumer_msg.h): what every consumer refuses before applying anything,
 * the printable form of bytes a message carries, and the attempt policy.
 */
#include "consumer_msg.h"

#include "backoff.h"
#include "js.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *oms_msg_header(const oms_msg *m, const char *key)
{
    const char *v = NULL;
    if (m->nmsg == NULL || natsMsgHeader_Get(m->nmsg, key, &v) != NATS_OK)
        return NULL;
    return v;
}

/* ---- the boundary: text a message carries ----------------------------- */

bool consumer_text_problem(const void *bytes, size_t len, size_t max_bytes, char *why,
                           size_t why_len)
{
    const unsigned char *s = bytes;
    if (len > max_bytes) {
        snprintf(why, why_len, "is %zu bytes, longer than the %zu allowed", len, max_bytes);
        return true;
    }
    /* One pass in order: the reason names the first fault, whichever kind. */
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            snprintf(why, why_len, "is not valid UTF-8 (byte 0x%02x at offset %zu)", s[i], i);
            return true;
        }
        if (utf8_is_control(cp)) {
            snprintf(why, why_len, "contains control character U+%04X at offset %zu", (unsigned)cp,
                     i);
            return true;
        }
        i += n;
    }
    return false;
}

/* The printable piece for the character at s[0..n): itself, or escaped. */
static size_t printable_piece(const unsigned char *s, size_t n, uint32_t cp, char esc[20],
                              const char **piece)
{
    size_t w = 0;
    if (n == 1 && s[0] == '\\') {
        *piece = "\\\\";
        return 2;
    }
    if ((n == 1 && s[0] < 0x80 && !utf8_is_control(s[0])) || (n > 1 && !utf8_is_control(cp))) {
        *piece = (const char *)s;
        return n;
    }
    for (size_t k = 0; k < n; k++)
        w += (size_t)snprintf(esc + w, 20 - w, "\\x%02x", s[k]);
    *piece = esc;
    return w;
}

char *consumer_printable(const void *bytes, size_t len, char *out, size_t out_size)
{
    static const char ellipsis[] = "...";
    const unsigned char *s = bytes;
    size_t o = 0, fit = 0; /* fit: the last cut that leaves room for the ellipsis */
    if (out_size == 0)
        return out;
    for (size_t i = 0; i < len;) {
        char esc[20];
        const char *piece = NULL;
        uint32_t cp = 0;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n == 0)
            n = 1, cp = s[i]; /* one stray byte: escaped */
        size_t w = printable_piece(s + i, n, cp, esc, &piece);
        if (o + w + 1 > out_size) {
            o = fit;
            if (o + sizeof ellipsis <= out_size)
                memcpy(out + o, ellipsis, sizeof ellipsis - 1), o += sizeof ellipsis - 1;
            break;
        }
        memcpy(out + o, piece, w);
        o += w;
        i += n;
        if (o + sizeof ellipsis <= out_size)
            fit = o;
    }
    out[o] = '\0';
    return out;
}

/* A header that is not acceptable text: the reason, naming it, in m. */
static bool header_problem(oms_msg *m, const char *key, const char *value, size_t max_bytes)
{
    char why[128], name[96];
    consumer_printable(key, strlen(key), name, sizeof name);
    if (consumer_text_problem(key, strlen(key), CONSUMER_HEADER_MAX_BYTES, why, sizeof why)) {
        snprintf(m->reason, sizeof m->reason, "header name %s %s", name, why);
        return true;
    }
    if (consumer_text_problem(value, strlen(value), max_bytes, why, sizeof why)) {
        snprintf(m->reason, sizeof m->reason, "header %s %s", name, why);
        return true;
    }
    return false;
}

/* Every value of every header of m; Nats-Msg-Id first, with the event id's
 * bound. */
static bool headers_problem(oms_msg *m)
{
    const char **keys = NULL, **values = NULL;
    int nkeys = 0, nvalues = 0;
    const char *id = oms_msg_header(m, JS_HDR_MSG_ID);
    bool bad = id != NULL && header_problem(m, JS_HDR_MSG_ID, id, CONSUMER_EVENT_ID_LEN - 1);
    if (bad || natsMsgHeader_Keys(m->nmsg, &keys, &nkeys) != NATS_OK)
        return bad;
    for (int k = 0; k < nkeys && !bad; k++) {
        if (natsMsgHeader_Values(m->nmsg, keys[k], &values, &nvalues) != NATS_OK)
            continue;
        for (int v = 0; v < nvalues && !bad; v++)
            bad = header_problem(m, keys[k], values[v], CONSUMER_HEADER_MAX_BYTES);
        free((void *)values);
    }
    free((void *)keys);
    return bad;
}

static bool boundary_problem(oms_msg *m)
{
    char why[128];
    if (consumer_text_problem(m->subject, strlen(m->subject), CONSUMER_SUBJECT_MAX_BYTES, why,
                              sizeof why)) {
        snprintf(m->reason, sizeof m->reason, "subject %s", why);
        return true;
    }
    return headers_problem(m);
}

/* The event id as stored raw: Nats-Msg-Id when there is one, else ours. */
const char *oms_msg_raw_event_id(const oms_msg *m)
{
    const char *id = oms_msg_header(m, JS_HDR_MSG_ID);
    return id != NULL && *id != '\0' ? id : m->event_id;
}

void consumer_msg_init(oms_msg *m, natsMsg *nm)
{
    jsMsgMetaData *meta = NULL;
    memset(m, 0, sizeof *m);
    m->nmsg = nm;
    m->subject = natsMsg_GetSubject(nm);
    m->data = natsMsg_GetData(nm);
    m->len = (size_t)natsMsg_GetDataLength(nm);
    if (natsMsg_GetMetaData(&meta, nm) == NATS_OK) {
        m->deliveries = meta->NumDelivered > INT32_MAX ? INT32_MAX : (int)meta->NumDelivered;
        jsMsgMetaData_Destroy(meta);
    }
    if (js_msg_event_id(nm, m->event_id, sizeof m->event_id) != OMS_OK)
        snprintf(m->event_id, sizeof m->event_id, "unknown");
    if (boundary_problem(m)) {
        const char *id = oms_msg_raw_event_id(m);
        if (id != m->event_id)
            consumer_printable(id, strlen(id), m->event_id, sizeof m->event_id);
        m->rejected = m->invalid = true;
    }
}

int consumer_max_attempts(int spec_max_attempts)
{
    return spec_max_attempts > 0 ? spec_max_attempts : CONSUMER_MAX_ATTEMPTS;
}

int64_t consumer_nak_delay_ms(int64_t spec_nak_delay_ms, int deliveries)
{
    int64_t first_ms = spec_nak_delay_ms > 0 ? spec_nak_delay_ms : CONSUMER_NAK_DELAY_MS;
    return oms_backoff_delay_ms(deliveries, first_ms, CONSUMER_NAK_DELAY_MAX_MS);
}

char *consumer_subject_label(const char *subject, char *out, size_t out_size)
{
    consumer_printable(subject, strlen(subject), out, out_size);
    /* Label values are quoted: a quote or backslash would end them early. */
    for (char *p = out; *p; p++)
        if (*p == '"' || *p == '\\')
            *p = '_';
    return out;
}
