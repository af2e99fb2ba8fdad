/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 *   log_info("batch applied", "subject", subj, "events", "12", NULL);
 *
 * Fields are key/value string pairs ended by NULL. The service name is set once
 * at start. Thread-safe: each line is written with one write(2).
 */
#ifndef OMS_LOG_H
#define OMS_LOG_H

typedef enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Sets the "service" field of every line and the minimum level (default info). */
void log_init(const char *service, log_level min_level);

/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int log_level_parse(const char *s);

void log_write(log_level level, const char *msg, ...);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
