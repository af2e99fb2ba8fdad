/*
 * metrics.h - Prometheus metrics: counters, gauges and histograms kept in
 * memory and rendered in the text exposition format (version 0.0.4).
 *
 * A series is (name, labels). labels is a preformatted label list without
 * braces, e.g. "subject=\"order.created\",result=\"applied\"", or "" for none;
 * callers pass fixed label values (subjects, results), escaping is theirs.
 * All functions are thread-safe. Update series per batch, not per message.
 */
#ifndef OMS_METRICS_H
#define OMS_METRICS_H

#include "oms.h"

typedef struct metrics metrics;

/* Default histogram bounds in seconds, for batch and request durations. */
extern const double METRICS_SECONDS_BUCKETS[];
extern const size_t METRICS_SECONDS_BUCKETS_LEN;

/* Caller frees with metrics_destroy. Returns NULL when out of memory. */
metrics *metrics_create(void);
void metrics_destroy(metrics *m); /* NULL is a no-op */

/* Declares a family's help text and type before its first use; optional for
 * counters and gauges (help then defaults to the name). Histograms must be
 * declared, with ascending upper bounds (+Inf is implicit); bounds are copied. */
void metrics_counter_declare(metrics *m, const char *name, const char *help);
void metrics_gauge_declare(metrics *m, const char *name, const char *help);
void metrics_histogram_declare(metrics *m, const char *name, const char *help, const double *bounds,
                               size_t n_bounds);

void metrics_counter_add(metrics *m, const char *name, const char *labels, double v);
void metrics_gauge_set(metrics *m, const char *name, const char *labels, double v);
void metrics_histogram_observe(metrics *m, const char *name, const char *labels, double v);

/* Renders every family. Caller frees *out with free(). */
oms_status metrics_render(metrics *m, char **out, size_t *out_len);

/* Value of one counter or gauge series, 0 when absent (for tests and omsctl). */
double metrics_value(metrics *m, const char *name, const char *labels);

#endif
