/*
 * curlrun.c - a multi handle's transfers run to completion (see curlrun.h).
 */
#include "curlrun.h"

void curlrun_perform(CURLM *multi, int poll_ms, curlrun_done_fn done)
{
    int running = 0;
    do {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running > 0 && curl_multi_poll(multi, NULL, 0, poll_ms, NULL) != CURLM_OK)
            break;
    } while (running > 0);
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        void *priv = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&priv);
        done(priv, msg->data.result);
    }
}
