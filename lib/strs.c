/*
 * strs.c - sorted string arrays (see strs.h).
 */
#include "strs.h"

#include <stdlib.h>
#include <string.h>

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void strs_sort_unique(const char **strs, size_t *n)
{
    size_t kept = 0;
    if (*n == 0)
        return;
    qsort(strs, *n, sizeof *strs, cmp_str_ptr);
    for (size_t i = 0; i < *n; i++)
        if (kept == 0 || strcmp(strs[kept - 1], strs[i]) != 0)
            strs[kept++] = strs[i];
    *n = kept;
}

long strs_find(const char *const *strs, size_t n, const char *s)
{
    if (n == 0)
        return -1;
    const char *const *hit = bsearch(&s, strs, n, sizeof *strs, cmp_str_ptr);
    return hit ? (long)(hit - strs) : -1;
}
