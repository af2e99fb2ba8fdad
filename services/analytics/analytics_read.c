/*
 * analytics_read.c - reading the projection: KPIs of a range of days and a
 * leaderboard, each with one atomic script (EVAL; Redis caches the compiled
 * script), so a reader never mixes two generations during a rebuild's swap.
 */
#include "analytics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char KPI_SCRIPT[] =
    "local cur = redis.call('GET', 'analytics:current')\n"
    "local out = {}\n"
    "for i, day in ipairs(ARGV) do\n"
    "  local v = {}\n"
    "  if cur then\n"
    "    v = redis.call('HMGET', 'analytics:' .. cur .. ':kpi:' .. day, 'revenue_cents',\n"
    "                   'order_count', 'failed_count', 'refund_cents', 'refund_count')\n"
    "  end\n"
    "  out[i] = {tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0,\n"
    "            tonumber(v[4]) or 0, tonumber(v[5]) or 0}\n"
    "end\n"
    "return out\n";

static const char LEADERBOARD_SCRIPT[] =
    "local cur = redis.call('GET', 'analytics:current')\n"
    "if not cur then return {} end\n"
    "local p = 'analytics:' .. cur .. ':'\n"
    "local top = redis.call('ZREVRANGE', p .. 'leaderboard:' .. ARGV[1], 0,\n"
    "                       tonumber(ARGV[2]) - 1, 'WITHSCORES')\n"
    "local out = {}\n"
    "for i = 1, #top, 2 do\n"
    "  local c = top[i]\n"
    "  local info = redis.call('HMGET', p .. 'customer:' .. c, 'name', 'email')\n"
    "  local orders = redis.call('HGET', p .. 'orders:' .. ARGV[1], c)\n"
    "  out[#out + 1] = {c, top[i + 1], orders or '0', info[1] or '', info[2] or ''}\n"
    "end\n"
    "return out\n";

static oms_status eval(redis_conn *r, const char *script, redis_args *a, redisReply **out)
{
    redis_args cmd;
    oms_status s;
    redis_args_init(&cmd);
    if ((s = redis_args_add_str(&cmd, "EVAL")) == OMS_OK &&
        (s = redis_args_add_str(&cmd, script)) == OMS_OK &&
        (s = redis_args_add_str(&cmd, "0")) == OMS_OK)
        for (size_t i = 0; i < a->n && s == OMS_OK; i++)
            s = redis_args_add(&cmd, a->argv[i], a->lens[i]);
    if (s == OMS_OK)
        s = redis_command_args(r, &cmd, out);
    redis_args_fini(&cmd);
    if (s == OMS_OK && (*out)->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(*out);
        *out = NULL;
        s = OMS_EDB;
    }
    return s;
}

oms_status analytics_read_kpis(redis_conn *r, int64_t first, size_t n, analytics_kpi *out)
{
    redis_args a;
    redisReply *rep = NULL;
    oms_status s = OMS_OK;
    redis_args_init(&a);
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        analytics_day_format(first + (int64_t)i, out[i].day);
        s = redis_args_add_str(&a, out[i].day);
    }
    if (s == OMS_OK)
        s = eval(r, KPI_SCRIPT, &a, &rep);
    if (s == OMS_OK && rep->elements != n)
        s = OMS_EDB;
    for (size_t i = 0; i < n && s == OMS_OK; i++) {
        redisReply *v = rep->element[i];
        if (v->type != REDIS_REPLY_ARRAY || v->elements != 5) {
            s = OMS_EDB;
            break;
        }
        out[i].revenue_cents = v->element[0]->integer;
        out[i].order_count = v->element[1]->integer;
        out[i].failed_count = v->element[2]->integer;
        out[i].refund_cents = v->element[3]->integer;
        out[i].refund_count = v->element[4]->integer;
    }
    freeReplyObject(rep);
    redis_args_fini(&a);
    return s;
}

static void copy_str(char *dst, size_t cap, const redisReply *r)
{
    snprintf(dst, cap, "%.*s", r->type == REDIS_REPLY_STRING ? (int)r->len : 0,
             r->type == REDIS_REPLY_STRING ? r->str : "");
}

static int64_t reply_int(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    return r->type == REDIS_REPLY_STRING ? llround(strtod(r->str, NULL)) : 0;
}

oms_status analytics_read_leaderboard(redis_conn *r, const char *period, size_t limit,
                                      analytics_leader **out, size_t *n_out)
{
    redis_args a;
    redisReply *rep = NULL;
    analytics_leader *l = NULL;
    oms_status s;
    redis_args_init(&a);
    if ((s = redis_args_add_str(&a, period)) == OMS_OK &&
        (s = redis_args_add_int(&a, (int64_t)limit)) == OMS_OK)
        s = eval(r, LEADERBOARD_SCRIPT, &a, &rep);
    if (s == OMS_OK && (l = calloc(rep->elements ? rep->elements : 1, sizeof *l)) == NULL)
        s = OMS_ENOMEM;
    for (size_t i = 0; s == OMS_OK && i < rep->elements; i++) {
        redisReply *v = rep->element[i];
        if (v->type != REDIS_REPLY_ARRAY || v->elements != 5) {
            s = OMS_EDB;
            break;
        }
        copy_str(l[i].customer_id, sizeof l[i].customer_id, v->element[0]);
        l[i].net_cents = reply_int(v->element[1]);
        l[i].orders = reply_int(v->element[2]);
        copy_str(l[i].name, sizeof l[i].name, v->element[3]);
        copy_str(l[i].email, sizeof l[i].email, v->element[4]);
    }
    if (s == OMS_OK) {
        *out = l;
        *n_out = rep->elements;
        l = NULL;
    }
    free(l);
    freeReplyObject(rep);
    redis_args_fini(&a);
    return s;
}

json_t *analytics_kpi_json(const analytics_kpi *k, const char *currency)
{
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "date", k->day, "revenue_cents",
                     (json_int_t)k->revenue_cents, "order_count", (json_int_t)k->order_count,
                     "failed_count", (json_int_t)k->failed_count, "refund_cents",
                     (json_int_t)k->refund_cents, "refund_count", (json_int_t)k->refund_count,
                     "net_revenue_cents", (json_int_t)(k->revenue_cents - k->refund_cents),
                     "average_order_value_cents",
                     (json_int_t)analytics_aov_cents(k->revenue_cents, k->order_count), "currency",
                     currency);
}

json_t *analytics_leaders_json(const analytics_leader *l, size_t n, const char *period,
                               const char *currency)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(rows,
                              json_pack("{s:I,s:s,s:s,s:s,s:I,s:I}", "rank", (json_int_t)i + 1,
                                        "customer_id", l[i].customer_id, "name", l[i].name, "email",
                                        l[i].email, "net_spend_cents", (json_int_t)l[i].net_cents,
                                        "orders", (json_int_t)l[i].orders));
    return json_pack("{s:s,s:s,s:o}", "period", period, "currency", currency, "leaders", rows);
}
