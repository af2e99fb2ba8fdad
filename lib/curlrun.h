/*
 * curlrun.h - runs a group of prepared libcurl transfers in parallel on one
 * multi handle, so a slow peer costs one timeout per group rather than one
 * per request. Used by payment's gateway client and notify's deliveries.
 */
#ifndef OMS_CURLRUN_H
#define OMS_CURLRUN_H

#include <curl/curl.h>

/* Called once per finished transfer with its CURLINFO_PRIVATE pointer and
 * its result. */
typedef void (*curlrun_done_fn)(void *priv, CURLcode result);

/* Performs every transfer added to multi until none is running (each bounded
 * by its own timeouts), waiting at most poll_ms at a time, then calls done
 * for each one that finished. A transfer the multi handle could not drive
 * (out of memory) gets no call. Borrows multi; the handles stay added. */
void curlrun_perform(CURLM *multi, int poll_ms, curlrun_done_fn done);

#endif
