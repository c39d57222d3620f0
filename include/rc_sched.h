/* rc_sched — the urgent path's place in the CPU queue.  On a busy machine
 * a thread's nice value counts only inside its own session's autogroup
 * (Linux, sched_autogroup_enabled): ahead of the process's own bulk work,
 * not of everything else.  The real-time round-robin class runs a thread as
 * soon as it is woken, ahead of every ordinary thread on the machine; the
 * kernel still keeps 5 % of each second for the others (sched_rt_runtime_us),
 * so a thread that mostly waits on a socket is safe there. */
#ifndef RC_SCHED_H
#define RC_SCHED_H

#include <stddef.h>

/* Puts the calling thread in SCHED_RR at `prio` (1..99); threads it starts
 * afterwards (librdkafka's included) inherit it.  prio 0 puts it back in
 * the ordinary class (SCHED_OTHER).  Returns 0, or -1 with the reason in
 * errbuf (typically: no CAP_SYS_NICE) and nothing changed. */
int rc_sched_realtime(int prio, char *errbuf, size_t errlen);

#endif
