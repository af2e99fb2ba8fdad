/*
 * analytics_script.c - one Lua script applies one event to the projection.
 *
 * Every effect is a sum (HINCRBY, ZINCRBY) or a keep-the-newest choice, so
 * applying the same set of events in any order gives the same keys: a refund
 * that arrives before its order's payment subtracts from the leaderboard
 * first and the payment adds later. The event id is recorded in the same
 * script (SET NX EX), so an event is applied once per generation however
 * often it is delivered. The script checks its arguments before its first
 * write: Redis does not roll back a script that fails half way.
 */
#include "analytics.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

/* ARGV: 1 target generation ("" = every generation being written),
 * 2 event id, 3 TTL of the id (s), 4 kind (paid|failed|refund), 5 day,
 * 6 month, 7 customer id, 8 cents, 9 customer name, 10 email, 11 event ms. */
const char ANALYTICS_APPLY_SCRIPT[] =
    "local target, id, ttl, kind = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]\n"
    "local day, month, cust = ARGV[5], ARGV[6], ARGV[7]\n"
    "local cents, name, email, at = tonumber(ARGV[8]), ARGV[9], ARGV[10], tonumber(ARGV[11])\n"
    "if #ARGV ~= 11 or not ttl or not cents or not at or id == '' or\n"
    "   (kind ~= 'paid' and kind ~= 'failed' and kind ~= 'refund') then\n"
    "  return redis.error_reply('analytics: bad arguments for event ' .. tostring(id))\n"
    "end\n"
    "local gens\n"
    "if target ~= '' then\n"
    "  gens = {target}\n"
    "else\n"
    "  gens = redis.call('SMEMBERS', 'analytics:writing')\n"
    "  if #gens == 0 then\n"
    "    local cur = redis.call('GET', 'analytics:current')\n"
    "    if not cur then cur = '0'; redis.call('SET', 'analytics:current', cur) end\n"
    "    redis.call('SADD', 'analytics:writing', cur)\n"
    "    gens = {cur}\n"
    "  end\n"
    "end\n"
    "local current = redis.call('GET', 'analytics:current')\n"
    "local result = 0\n"
    /* Keeps the newest non-empty name and email of a customer (one read,
     * at most one write); equal times keep the greater value, so the choice
     * does not depend on arrival. */
    "local function newer(value, old, old_at)\n"
    "  if value == '' then return false end\n"
    "  old_at = tonumber(old_at)\n"
    "  return not old_at or at > old_at or (at == old_at and value > old)\n"
    "end\n"
    "local function keep_newest(key)\n"
    "  local old = redis.call('HMGET', key, 'name', 'name_at', 'email', 'email_at')\n"
    "  local set = {}\n"
    "  if newer(name, old[1], old[2]) then\n"
    "    set[#set + 1] = 'name'; set[#set + 1] = name\n"
    "    set[#set + 1] = 'name_at'; set[#set + 1] = at\n"
    "  end\n"
    "  if newer(email, old[3], old[4]) then\n"
    "    set[#set + 1] = 'email'; set[#set + 1] = email\n"
    "    set[#set + 1] = 'email_at'; set[#set + 1] = at\n"
    "  end\n"
    "  if #set > 0 then redis.call('HSET', key, unpack(set)) end\n"
    "end\n"
    "for _, g in ipairs(gens) do\n"
    "  local p = 'analytics:' .. g .. ':'\n"
    "  if redis.call('SET', p .. 'seen:' .. id, '1', 'NX', 'EX', ttl) then\n"
    "    if target ~= '' or not current or g == current then result = 1 end\n"
    "    local kpi = p .. 'kpi:' .. day\n"
    "    if kind == 'paid' then\n"
    "      redis.call('HINCRBY', kpi, 'revenue_cents', cents)\n"
    "      redis.call('HINCRBY', kpi, 'order_count', 1)\n"
    "      redis.call('ZINCRBY', p .. 'leaderboard:' .. month, cents, cust)\n"
    "      redis.call('ZINCRBY', p .. 'leaderboard:all', cents, cust)\n"
    "      redis.call('HINCRBY', p .. 'orders:' .. month, cust, 1)\n"
    "      redis.call('HINCRBY', p .. 'orders:all', cust, 1)\n"
    "    elseif kind == 'failed' then\n"
    "      redis.call('HINCRBY', kpi, 'failed_count', 1)\n"
    "    else\n"
    "      redis.call('HINCRBY', kpi, 'refund_cents', cents)\n"
    "      redis.call('HINCRBY', kpi, 'refund_count', 1)\n"
    "      redis.call('ZINCRBY', p .. 'leaderboard:' .. month, -cents, cust)\n"
    "      redis.call('ZINCRBY', p .. 'leaderboard:all', -cents, cust)\n"
    "    end\n"
    "    if cust ~= '' then\n"
    "      keep_newest(p .. 'customer:' .. cust)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return result\n";

/* ---- encoding ---------------------------------------------------------- */

/* What the script needs from any of the three events. */
typedef struct event_fields {
    const char *kind;
    const char *event_id;
    const char *order_id;
    const char *customer_id;
    const char *customer_name;
    const char *customer_email;
    const char *currency;
    int64_t cents;
    int64_t at_ms;
    const char *at_field; /* for messages */
} event_fields;

static const char *event_id_of(const Oms__V1__EventMeta *meta, const oms_msg *m)
{
    return meta != NULL && meta->event_id[0] != '\0' ? meta->event_id : m->event_id;
}

/* Validates f and appends the script's ARGV; rejects m naming the field. */
static oms_status encode_fields(const analytics_ctx *ctx, oms_msg *m, const event_fields *f,
                                redis_args *a)
{
    char day[ANALYTICS_DAY_LEN], month[ANALYTICS_MONTH_LEN];
    if (f->order_id[0] == '\0') {
        rconsumer_reject(m, "%s: order_id is empty", m->subject);
    } else if (strcmp(f->kind, "failed") != 0 && f->customer_id[0] == '\0') {
        rconsumer_reject(m, "%s: order %s: customer_id is empty", m->subject, f->order_id);
    } else if (f->cents < 0 || (strcmp(f->kind, "refund") == 0 && f->cents == 0)) {
        rconsumer_reject(m, "%s: order %s: amount %lld cents is not valid", m->subject, f->order_id,
                         (long long)f->cents);
    } else if (strcmp(f->kind, "failed") != 0 && strcasecmp(f->currency, ctx->currency) != 0) {
        rconsumer_reject(m, "%s: order %s: currency \"%s\" is not %s (OMS_CURRENCY)", m->subject,
                         f->order_id, f->currency, ctx->currency);
    } else if (f->at_ms == 0) {
        rconsumer_reject(m, "%s: order %s: %s is not set (nor meta.occurred_at_ms)", m->subject,
                         f->order_id, f->at_field);
    } else if (analytics_day_of(f->at_ms, day, month) != OMS_OK) {
        rconsumer_reject(m, "%s: order %s: %s %lld is not a time from 1970 to 9999", m->subject,
                         f->order_id, f->at_field, (long long)f->at_ms);
    }
    if (m->rejected)
        return OMS_OK;
    oms_status s = OMS_OK;
    const char *text[] = {ctx->target_gen, f->event_id};
    for (size_t i = 0; i < 2 && s == OMS_OK; i++)
        s = redis_args_add_str(a, text[i]);
    if (s == OMS_OK && (s = redis_args_add_int(a, ctx->seen_ttl_s)) == OMS_OK) {
        const char *more[] = {f->kind, day, month, f->customer_id};
        for (size_t i = 0; i < 4 && s == OMS_OK; i++)
            s = redis_args_add_str(a, more[i]);
    }
    if (s == OMS_OK)
        s = redis_args_add_int(a, f->cents);
    if (s == OMS_OK)
        s = redis_args_add_str(a, f->customer_name);
    if (s == OMS_OK)
        s = redis_args_add_str(a, f->customer_email);
    if (s == OMS_OK)
        s = redis_args_add_int(a, f->at_ms);
    return s;
}

static int64_t time_or_meta(int64_t at_ms, const Oms__V1__EventMeta *meta)
{
    return at_ms != 0 || meta == NULL ? at_ms : meta->occurred_at_ms;
}

oms_status analytics_encode_paid(void *ctx, oms_msg *m, redis_args *args)
{
    Oms__V1__OrderPaid *e = oms__v1__order_paid__unpack(NULL, m->len, m->data);
    if (e == NULL) {
        rconsumer_reject(m, "%s: not a valid oms.v1.OrderPaid message", m->subject);
        return OMS_OK;
    }
    event_fields f = {"paid",         event_id_of(e->meta, m), e->order_id,
                      e->customer_id, e->customer_name,        e->customer_email,
                      e->currency,    e->total_cents,          time_or_meta(e->paid_at_ms, e->meta),
                      "paid_at_ms"};
    oms_status s = encode_fields(ctx, m, &f, args);
    oms__v1__order_paid__free_unpacked(e, NULL);
    return s;
}

oms_status analytics_encode_failed(void *ctx, oms_msg *m, redis_args *args)
{
    Oms__V1__OrderFailed *e = oms__v1__order_failed__unpack(NULL, m->len, m->data);
    if (e == NULL) {
        rconsumer_reject(m, "%s: not a valid oms.v1.OrderFailed message", m->subject);
        return OMS_OK;
    }
    /* A failed order moves no money: only its day counts. */
    event_fields f = {"failed",
                      event_id_of(e->meta, m),
                      e->order_id,
                      e->customer_id,
                      e->customer_name,
                      e->customer_email,
                      e->currency,
                      0,
                      time_or_meta(e->failed_at_ms, e->meta),
                      "failed_at_ms"};
    oms_status s = encode_fields(ctx, m, &f, args);
    oms__v1__order_failed__free_unpacked(e, NULL);
    return s;
}

oms_status analytics_encode_refund(void *ctx, oms_msg *m, redis_args *args)
{
    Oms__V1__RefundProcessed *e = oms__v1__refund_processed__unpack(NULL, m->len, m->data);
    if (e == NULL) {
        rconsumer_reject(m, "%s: not a valid oms.v1.RefundProcessed message", m->subject);
        return OMS_OK;
    }
    event_fields f = {
        "refund",         event_id_of(e->meta, m), e->order_id,
        e->customer_id,   e->customer_name,        e->customer_email,
        e->currency,      e->amount_cents,         time_or_meta(e->processed_at_ms, e->meta),
        "processed_at_ms"};
    oms_status s = encode_fields(ctx, m, &f, args);
    oms__v1__refund_processed__free_unpacked(e, NULL);
    return s;
}

/* ---- business metrics -------------------------------------------------- */

static const double ORDER_VALUE_BUCKETS[] = {1000,  2500,   5000,   10000,  25000,
                                             50000, 100000, 250000, 500000, 1000000};

void analytics_metrics_declare(metrics *m)
{
    metrics_counter_declare(m, "oms_orders_total", "Orders that reached a terminal status");
    metrics_counter_declare(m, "oms_revenue_cents_total", "Revenue of paid orders, in cents");
    metrics_counter_declare(m, "oms_refunds_total", "Refunds processed");
    metrics_counter_declare(m, "oms_refunds_cents_total", "Money refunded, in cents");
    metrics_histogram_declare(m, "oms_order_value_cents", "Value of paid orders, in cents",
                              ORDER_VALUE_BUCKETS,
                              sizeof ORDER_VALUE_BUCKETS / sizeof ORDER_VALUE_BUCKETS[0]);
}

void analytics_done(void *ctx, const oms_msg *m, long long result)
{
    analytics_ctx *a = ctx;
    if (result != 1)
        return; /* seen before: counted when it was applied */
    if (strcmp(m->subject, "order.paid") == 0) {
        Oms__V1__OrderPaid *e = oms__v1__order_paid__unpack(NULL, m->len, m->data);
        if (e == NULL)
            return;
        metrics_counter_add(a->m, "oms_orders_total", "status=\"paid\"", 1);
        metrics_counter_add(a->m, "oms_revenue_cents_total", "", (double)e->total_cents);
        metrics_histogram_observe(a->m, "oms_order_value_cents", "", (double)e->total_cents);
        oms__v1__order_paid__free_unpacked(e, NULL);
    } else if (strcmp(m->subject, "order.failed") == 0) {
        metrics_counter_add(a->m, "oms_orders_total", "status=\"failed\"", 1);
    } else if (strcmp(m->subject, "refund.processed") == 0) {
        Oms__V1__RefundProcessed *e = oms__v1__refund_processed__unpack(NULL, m->len, m->data);
        if (e == NULL)
            return;
        metrics_counter_add(a->m, "oms_refunds_total", "", 1);
        metrics_counter_add(a->m, "oms_refunds_cents_total", "", (double)e->amount_cents);
        oms__v1__refund_processed__free_unpacked(e, NULL);
    }
}

/* ---- the three consumers ----------------------------------------------- */

void analytics_specs_init(rconsumer_spec specs[ANALYTICS_N_CONSUMERS], analytics_ctx *ctx,
                          const oms_config *cfg, const char *durable_prefix, bool replay)
{
    static const struct {
        const char *suffix, *stream, *filter;
        rconsumer_encode_fn encode;
    } defs[ANALYTICS_N_CONSUMERS] = {
        {"paid", "ORDERS", "order.paid", analytics_encode_paid},
        {"failed", "ORDERS", "order.failed", analytics_encode_failed},
        {"refunds", "REFUNDS", "refund.processed", analytics_encode_refund},
    };
    for (size_t i = 0; i < ANALYTICS_N_CONSUMERS; i++) {
        /* name and durable are the same text: "<prefix>-<suffix>". */
        snprintf(ctx->names[i], sizeof ctx->names[i], "%s-%s", durable_prefix, defs[i].suffix);
        specs[i] = (rconsumer_spec){
            .pull = {.name = ctx->names[i],
                     .stream = defs[i].stream,
                     .durable = ctx->names[i],
                     .filter = defs[i].filter,
                     .batch_max = cfg->batch_max,
                     .wait_ms = cfg->batch_wait_ms,
                     .ack_wait_ms = cfg->ack_wait_ms},
            .script = ANALYTICS_APPLY_SCRIPT,
            .encode = defs[i].encode,
            .done = analytics_done,
            .ctx = ctx,
            .replay = replay,
        };
    }
}
