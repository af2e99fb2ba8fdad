/*
 * import_check.c - a first pass over an order CSV before anything is sent:
 * a file whose header lacks a required column would be rejected row by row
 * by ingest, so it is refused here with one message instead. The pass also
 * counts the rows, which gives the progress bar its total.
 */
#include "import.h"

#include <string.h>

/* order_csv.c's names and aliases, for messages. */
#define ACCEPTED_COLUMNS ORDER_CSV_ACCEPTED_COLUMNS

typedef struct check {
    import_file_info *info;
    int64_t records;
    bool not_header, header_bad, stop;
    order_col missing;
    order_layout layout;
    char error[ORDER_ERR_LEN];
} check;

/* The layout, and the names of the columns that map to nothing, so the
 * summary can say once that they were ignored. */
static void note_header(import_file_info *info, const order_csv_header *h, char *const *fields,
                        size_t n)
{
    size_t len = 0;
    info->layout = h->layout;
    info->generates_ids = h->layout == ORDER_LAYOUT_PRODUCTS && h->index[OC_ORDER_ID] < 0;
    for (size_t i = 0; i < n; i++) {
        bool mapped = false;
        for (int col = 0; col < OC_COUNT && !mapped; col++)
            mapped = h->index[col] == (int)i;
        if (mapped || *fields[i] == '\0' || len + strlen(fields[i]) + 3 >= sizeof info->ignored)
            continue;
        len += (size_t)snprintf(info->ignored + len, sizeof info->ignored - len, "%s%s",
                                len ? ", " : "", fields[i]);
    }
}

static void on_record(void *arg, char *const *fields, size_t n)
{
    check *c = arg;
    if (c->records++ > 0)
        return;
    order_csv_header h = {0};
    if (!order_csv_is_header(fields, n))
        c->not_header = true;
    else if (order_csv_header_parse(fields, n, &h, &c->missing, c->error) != OMS_OK)
        c->header_bad = true;
    c->layout = c->header_bad ? h.layout : ORDER_LAYOUT_LINES;
    c->stop = c->not_header || c->header_bad;
    if (!c->stop)
        note_header(c->info, &h, fields, n);
}

oms_status import_check_file(const char *path, import_file_info *info)
{
    check c = {.info = info};
    memset(info, 0, sizeof *info);
    oms_status s = cli_csv_scan_hashed(path, on_record, &c, &c.stop, info->content_sha256);
    if (s != OMS_OK)
        return s;
    if (c.records == 0) {
        cli_error("%s is empty: an order CSV starts with a header line (%s)", path,
                  ACCEPTED_COLUMNS);
        return OMS_EINVAL;
    }
    if (c.not_header) {
        cli_error("the first line of %s is not a header: it names none of the accepted columns "
                  "(%s); nothing was sent",
                  path, ACCEPTED_COLUMNS);
        return OMS_EINVAL;
    }
    if (c.header_bad) {
        cli_error("cannot import %s: column %s is missing: %s; accepted column names: %s; "
                  "nothing was sent",
                  path, order_csv_column_name(c.missing), c.error,
                  c.layout == ORDER_LAYOUT_PRODUCTS ? ORDER_CSV_PRODUCT_LIST_COLUMNS
                                                    : ACCEPTED_COLUMNS);
        return OMS_EINVAL;
    }
    if (c.records == 1) {
        cli_error("%s has a header but no rows: nothing to import", path);
        return OMS_EINVAL;
    }
    info->data_rows = c.records - 1;
    return OMS_OK;
}
