/*
 * strs.h - sorted arrays of borrowed strings: the sort-then-bsearch sets a
 * batch consumer builds to lock rows in byte order and find them again.
 */
#ifndef OMS_STRS_H
#define OMS_STRS_H

#include <stddef.h>

/* Sorts strs[0..*n) by strcmp and drops repeats; the pointers are borrowed. */
void strs_sort_unique(const char **strs, size_t *n);

/* Index of s in sorted strs[0..n), or -1. */
long strs_find(const char *const *strs, size_t n, const char *s);

#endif
