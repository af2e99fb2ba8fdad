/*
 * cli_table.c - aligned text tables: rows are collected first, so each
 * column is as wide as its widest cell whatever the data; and the text of
 * cells (sizes, times).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Year 9999: beyond it ISO 8601 needs more than four digits. */
#define TIME_MAX_MS 253402300799999LL

struct cli_table {
    size_t ncols;
    const char *const *headers;
    unsigned right_mask;
    char **cells; /* nrows * ncols, owned */
    size_t nrows, cap_rows;
};

cli_table *cli_table_create(size_t ncols, const char *const *headers, unsigned right_mask)
{
    cli_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    t->headers = headers;
    t->right_mask = right_mask;
    return t;
}

void cli_table_destroy(cli_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

oms_status cli_table_add(cli_table *t, const char *const *cells)
{
    if (t->nrows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
        char **p = realloc(t->cells, cap * t->ncols * sizeof *p);
        if (p == NULL)
            return OMS_ENOMEM;
        t->cells = p;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    oms_status s = OMS_OK;
    for (size_t c = 0; c < t->ncols; c++)
        if ((row[c] = strdup(cells[c] ? cells[c] : "")) == NULL)
            s = OMS_ENOMEM;
    /* The row counts even when a cell failed: destroy frees what exists. */
    t->nrows++;
    return s;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; s != NULL && *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static void print_row(const cli_table *t, const char *const *cells, const size_t *widths, FILE *out)
{
    /* Empty cells at the end of a row print nothing: no trailing blanks. */
    size_t ncols = t->ncols;
    while (ncols > 1 && (cells[ncols - 1] == NULL || *cells[ncols - 1] == '\0'))
        ncols--;
    for (size_t c = 0; c < ncols; c++) {
        const char *v = cells[c] ? cells[c] : "";
        size_t pad = widths[c] - text_width(v);
        bool right = (t->right_mask >> c) & 1u;
        bool last = c + 1 == ncols;
        if (right)
            fprintf(out, "%*s", (int)pad, "");
        fputs(v, out);
        if (!right && !last)
            fprintf(out, "%*s", (int)pad, "");
        fputs(last ? "\n" : "  ", out);
    }
}

void cli_table_print(const cli_table *t, FILE *out)
{
    size_t *widths = calloc(t->ncols, sizeof *widths);
    if (widths == NULL)
        return;
    for (size_t c = 0; c < t->ncols; c++)
        widths[c] = text_width(t->headers[c]);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > widths[c])
                widths[c] = w;
        }
    print_row(t, t->headers, widths, out);
    for (size_t r = 0; r < t->nrows; r++)
        print_row(t, (const char *const *)(t->cells + r * t->ncols), widths, out);
    free(widths);
}

void cli_format_bytes(uint64_t bytes, char *out, size_t out_len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, out_len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, out_len, "%.1f %s", v, units[u]);
}

void cli_format_time_ms(int64_t ms, char *out, size_t out_len)
{
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    int frac_ms = (int)(ms % 1000);
    char date[32];
    if (ms < 0 || ms > TIME_MAX_MS || gmtime_r(&secs, &tm) == NULL) {
        snprintf(out, out_len, "%lld", (long long)ms);
        return;
    }
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac_ms != 0)
        snprintf(out, out_len, "%s.%03dZ", date, frac_ms);
    else
        snprintf(out, out_len, "%sZ", date);
}
