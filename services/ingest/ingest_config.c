/*
 * ingest_config.c - the ingest settings, read once at start.
 *
 * OMS_INGEST_SEAL_MS is how long a live order's rows may pause before it is
 * sealed; OMS_INGEST_IMPORT_TIMEOUT_S how long a file import may wait for
 * missing rows before it is sealed as timed out.
 */
#include "ingest.h"

oms_status ingest_config(ingest_ctx *ctx, char err[CONFIG_ERR_LEN])
{
    int64_t v;
    ctx->currency = config_str("OMS_CURRENCY", "USD");
    if (config_int("OMS_INGEST_SEAL_MS", 1000, 10, 3600000, &v, err) != OMS_OK)
        return OMS_EINVAL;
    ctx->seal_ms = v;
    if (config_int("OMS_INGEST_IMPORT_TIMEOUT_S", 600, 1, 7 * 86400, &v, err) != OMS_OK)
        return OMS_EINVAL;
    ctx->import_timeout_ms = v * 1000;
    return OMS_OK;
}
