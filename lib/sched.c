/* rc_sched: real-time scheduling for the urgent path's threads (see
 * include/rc_sched.h for why nice is not enough). */
#include "rc_sched.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

int rc_sched_realtime(int prio, char *errbuf, size_t errlen)
{
    struct sched_param sp;
    int rc;

    memset(&sp, 0, sizeof sp);
    sp.sched_priority = prio;
    rc = pthread_setschedparam(pthread_self(), prio > 0 ? SCHED_RR : SCHED_OTHER, &sp);
    if (rc != 0) {
        snprintf(errbuf, errlen, "SCHED_RR priority %d: %s", prio, strerror(rc));
        return -1;
    }
    return 0;
}
