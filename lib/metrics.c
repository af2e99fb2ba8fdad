/*
 * metrics.c - Prometheus counters, gauges and histograms, rendered in the text
 * exposition format 0.0.4.
 *
 * Design: one mutex guards everything. Callers update per batch, not per
 * message, and a scrape every few seconds renders a few dozen families, so
 * linear lookups under one lock are cheaper than anything cleverer and keep
 * families and series in the order they first appeared, which makes the output
 * stable (diffable, and testable as exact text).
 *
 * Misuse (a histogram never declared, a name used with two types, bounds not
 * ascending) drops the update and logs a warning: the caller is wrong and
 * retrying will not help, but a metrics bug must never take a service down.
 */
#include "metrics.h"

#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double METRICS_SECONDS_BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t METRICS_SECONDS_BUCKETS_LEN = sizeof METRICS_SECONDS_BUCKETS /
                                           sizeof METRICS_SECONDS_BUCKETS[0];

typedef enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

static const char *const metric_type_names[] = {"counter", "gauge", "histogram"};

typedef struct metric_series {
    char *labels;
    double value;            /* counter or gauge */
    uint64_t *bucket_counts; /* histogram: per bucket, not cumulative; last is +Inf */
    double sum;
    uint64_t count;
} metric_series;

typedef struct metric_family {
    char *name;
    char *help;
    metric_type type;
    double *bounds; /* histogram upper bounds, ascending, +Inf excluded */
    size_t n_bounds;
    metric_series **series;
    size_t n_series, cap_series;
} metric_family;

struct metrics {
    pthread_mutex_t lock;
    metric_family **families;
    size_t n_families, cap_families;
};

/* Returns items grown so that item n fits, or NULL (items untouched). */
static void *grow(void *items, size_t *cap, size_t n, size_t item_size)
{
    if (n < *cap)
        return items;
    size_t new_cap = *cap ? *cap * 2 : 8;
    void *p = realloc(items, new_cap * item_size);
    if (p != NULL)
        *cap = new_cap;
    return p;
}

static void series_destroy(metric_series *se)
{
    if (se == NULL)
        return;
    free(se->labels);
    free(se->bucket_counts);
    free(se);
}

static void family_destroy(metric_family *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_series; i++)
        series_destroy(f->series[i]);
    free(f->series);
    free(f->bounds);
    free(f->help);
    free(f->name);
    free(f);
}

metrics *metrics_create(void)
{
    metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void metrics_destroy(metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_families; i++)
        family_destroy(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* A bad name would make the whole scrape unparseable, so it is refused here. */
static bool name_valid(const char *name)
{
    if (name == NULL || *name == '\0' || (*name >= '0' && *name <= '9'))
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

static metric_family *family_find(const metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n_families; i++)
        if (strcmp(m->families[i]->name, name) == 0)
            return m->families[i];
    return NULL;
}

/* Appends a new family; help NULL defaults to the name. Called under the lock. */
static metric_family *family_add(metrics *m, const char *name, const char *help, metric_type type)
{
    metric_family *f = NULL;
    metric_family **families = NULL;
    if (!name_valid(name)) {
        log_warn("metric name is invalid, updates dropped", "name", name ? name : "(null)", NULL);
        return NULL;
    }
    families = grow(m->families, &m->cap_families, m->n_families, sizeof *families);
    if (families == NULL)
        goto out;
    m->families = families;
    f = calloc(1, sizeof *f);
    if (f == NULL)
        goto out;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : name);
    if (f->name == NULL || f->help == NULL) {
        family_destroy(f);
        f = NULL;
        goto out;
    }
    m->families[m->n_families++] = f;
out:
    return f;
}

/* Finds or creates the family, checking its type. Called under the lock. */
static metric_family *family_get(metrics *m, const char *name, metric_type type)
{
    metric_family *f = family_find(m, name);
    if (f == NULL && type != METRIC_HISTOGRAM)
        f = family_add(m, name, NULL, type);
    else if (f == NULL)
        log_warn("histogram observed before metrics_histogram_declare, dropped", "name", name,
                 NULL);
    if (f != NULL && f->type != type) {
        log_warn("metric used with a type other than its own, update dropped", "name", name, "type",
                 metric_type_names[f->type], "used_as", metric_type_names[type], NULL);
        f = NULL;
    }
    return f;
}

static metric_series *series_find(const metric_family *f, const char *labels)
{
    if (labels == NULL)
        labels = "";
    for (size_t i = 0; i < f->n_series; i++)
        if (strcmp(f->series[i]->labels, labels) == 0)
            return f->series[i];
    return NULL;
}

/* Finds or creates the series. Called under the lock. */
static metric_series *series_get(metric_family *f, const char *labels)
{
    if (labels == NULL)
        labels = "";
    metric_series *se = series_find(f, labels);
    if (se != NULL)
        return se;
    metric_series **all = grow(f->series, &f->cap_series, f->n_series, sizeof *all);
    if (all == NULL)
        return NULL;
    f->series = all;
    se = calloc(1, sizeof *se);
    if (se == NULL)
        return NULL;
    se->labels = strdup(labels);
    if (f->type == METRIC_HISTOGRAM)
        se->bucket_counts = calloc(f->n_bounds + 1, sizeof *se->bucket_counts);
    if (se->labels == NULL || (f->type == METRIC_HISTOGRAM && se->bucket_counts == NULL)) {
        series_destroy(se);
        return NULL;
    }
    f->series[f->n_series++] = se;
    return se;
}

/* Declaring an existing family only replaces its help text, so a declaration
 * after an undeclared first use still documents the family. */
static void declare(metrics *m, const char *name, const char *help, metric_type type)
{
    pthread_mutex_lock(&m->lock);
    metric_family *f = family_get(m, name, type);
    if (f != NULL && help != NULL) {
        char *copy = strdup(help);
        if (copy != NULL) {
            free(f->help);
            f->help = copy;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

void metrics_counter_declare(metrics *m, const char *name, const char *help)
{
    declare(m, name, help, METRIC_COUNTER);
}

void metrics_gauge_declare(metrics *m, const char *name, const char *help)
{
    declare(m, name, help, METRIC_GAUGE);
}

/* Bounds must be finite and strictly ascending; a trailing +Inf is allowed and
 * dropped (it is implicit), so *n_bounds may shrink by one. */
static bool bounds_valid(const double *bounds, size_t *n_bounds)
{
    size_t n = *n_bounds;
    if (n > 0 && isinf(bounds[n - 1]) && bounds[n - 1] > 0)
        n--;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            return false;
    *n_bounds = n;
    return true;
}

/* Called under the lock; takes ownership of bounds. */
static void histogram_add(metrics *m, const char *name, const char *help, double *bounds,
                          size_t n_bounds)
{
    metric_family *f = family_find(m, name);
    if (f == NULL) {
        f = family_add(m, name, help, METRIC_HISTOGRAM);
        if (f != NULL) {
            f->bounds = bounds;
            f->n_bounds = n_bounds;
            bounds = NULL;
        }
    } else if (f->type != METRIC_HISTOGRAM || f->n_bounds != n_bounds ||
               memcmp(f->bounds, bounds, n_bounds * sizeof *bounds) != 0) {
        /* Series already hold counts sized for the first bounds; keep them. */
        log_warn("metric redeclared with another type or bounds, ignored", "name", name, NULL);
    }
    free(bounds);
}

void metrics_histogram_declare(metrics *m, const char *name, const char *help, const double *bounds,
                               size_t n_bounds)
{
    if (!bounds_valid(bounds, &n_bounds)) {
        log_warn("histogram bounds must be finite and ascending, family dropped", "name", name,
                 NULL);
        return;
    }
    /* One extra slot so that zero bounds still yields a non-NULL copy. */
    double *copy = malloc((n_bounds + 1) * sizeof *copy);
    if (copy == NULL)
        return;
    if (n_bounds > 0)
        memcpy(copy, bounds, n_bounds * sizeof *copy);
    pthread_mutex_lock(&m->lock);
    histogram_add(m, name, help, copy, n_bounds);
    pthread_mutex_unlock(&m->lock);
}

void metrics_counter_add(metrics *m, const char *name, const char *labels, double v)
{
    /* Counters only go up: a negative or NaN add would break rate(). */
    if (!(v >= 0))
        return;
    pthread_mutex_lock(&m->lock);
    metric_family *f = family_get(m, name, METRIC_COUNTER);
    metric_series *se = f ? series_get(f, labels) : NULL;
    if (se != NULL)
        se->value += v;
    pthread_mutex_unlock(&m->lock);
}

void metrics_gauge_set(metrics *m, const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&m->lock);
    metric_family *f = family_get(m, name, METRIC_GAUGE);
    metric_series *se = f ? series_get(f, labels) : NULL;
    if (se != NULL)
        se->value = v;
    pthread_mutex_unlock(&m->lock);
}

void metrics_histogram_observe(metrics *m, const char *name, const char *labels, double v)
{
    if (isnan(v))
        return;
    pthread_mutex_lock(&m->lock);
    metric_family *f = family_get(m, name, METRIC_HISTOGRAM);
    metric_series *se = f ? series_get(f, labels) : NULL;
    if (se != NULL) {
        size_t i = 0;
        while (i < f->n_bounds && v > f->bounds[i])
            i++;
        se->bucket_counts[i]++;
        se->sum += v;
        se->count++;
    }
    pthread_mutex_unlock(&m->lock);
}

double metrics_value(metrics *m, const char *name, const char *labels)
{
    double v = 0;
    pthread_mutex_lock(&m->lock);
    const metric_family *f = family_find(m, name);
    const metric_series *se = f && f->type != METRIC_HISTOGRAM ? series_find(f, labels) : NULL;
    if (se != NULL)
        v = se->value;
    pthread_mutex_unlock(&m->lock);
    return v;
}

/* Formats v the way Prometheus clients do: shortest text that reads back
 * exactly, and +Inf/-Inf/NaN spelled as the format requires. */
static void format_value(double v, char out[32])
{
    if (isnan(v)) {
        snprintf(out, 32, "NaN");
    } else if (isinf(v)) {
        snprintf(out, 32, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, 32, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, 32, "%.17g", v);
    }
}

/* HELP text escapes backslash and newline, per the 0.0.4 format. */
static void render_help(FILE *out, const metric_family *f)
{
    fprintf(out, "# HELP %s ", f->name);
    for (const char *p = f->help; *p != '\0'; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
    fprintf(out, "\n# TYPE %s %s\n", f->name, metric_type_names[f->type]);
}

/* One sample line: name[suffix]{labels[,le="..."]} value. */
static void render_sample(FILE *out, const char *name, const char *suffix, const char *labels,
                          const char *le, double v)
{
    char value[32];
    format_value(v, value);
    fprintf(out, "%s%s", name, suffix);
    if (*labels != '\0' && le != NULL)
        fprintf(out, "{%s,le=\"%s\"}", labels, le);
    else if (*labels != '\0')
        fprintf(out, "{%s}", labels);
    else if (le != NULL)
        fprintf(out, "{le=\"%s\"}", le);
    fprintf(out, " %s\n", value);
}

static void render_histogram_series(FILE *out, const metric_family *f, const metric_series *se)
{
    uint64_t cumulative = 0;
    char le[32];
    for (size_t i = 0; i <= f->n_bounds; i++) {
        cumulative += se->bucket_counts[i];
        format_value(i < f->n_bounds ? f->bounds[i] : INFINITY, le);
        render_sample(out, f->name, "_bucket", se->labels, le, (double)cumulative);
    }
    render_sample(out, f->name, "_sum", se->labels, NULL, se->sum);
    render_sample(out, f->name, "_count", se->labels, NULL, (double)se->count);
}

static void render_family(FILE *out, const metric_family *f)
{
    render_help(out, f);
    for (size_t i = 0; i < f->n_series; i++) {
        const metric_series *se = f->series[i];
        if (f->type == METRIC_HISTOGRAM)
            render_histogram_series(out, f, se);
        else
            render_sample(out, f->name, "", se->labels, NULL, se->value);
    }
}

oms_status metrics_render(metrics *m, char **out, size_t *out_len)
{
    char *text = NULL;
    size_t text_len = 0;
    oms_status st = OMS_OK;
    FILE *f = open_memstream(&text, &text_len);
    if (f == NULL)
        return OMS_ENOMEM;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_families; i++)
        render_family(f, m->families[i]);
    pthread_mutex_unlock(&m->lock);
    /* A memory stream only fails by running out of memory. */
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        st = OMS_ENOMEM;
        goto out;
    }
    *out = text;
    *out_len = text_len;
    text = NULL;
out:
    free(text);
    return st;
}
