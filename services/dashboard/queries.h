/* The dashboard's named, parameterised queries (queries.c). */
#ifndef DASHBOARD_QUERIES_H
#define DASHBOARD_QUERIES_H

#include "rc_pg.h"

#include <stddef.h>

/* Prepares every query on `pg` (again after each reconnection: rc_pg does
 * it).  Returns 0, or -1 with errbuf naming the query. */
int queries_prepare(rc_pg *pg, char *errbuf, size_t errlen);

#endif
