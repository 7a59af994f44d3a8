/* Timeouts. Each kind has one list; all entries of a list share a duration,
 * so a list is sorted by deadline just by appending, and setting, moving or
 * clearing a timer is O(1). One timerfd per loop is armed for the earliest
 * head, and only re-armed when that changes, so busy keep-alive traffic
 * costs no timer syscalls. An expired entry is handed to its owner's
 * timeout op. */
#define _GNU_SOURCE
#include "loop.h"

#include <sys/timerfd.h>
#include <time.h>

uint64_t piston__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void unlink_timer(piston__io *io) {
  piston_loop *loop = io->loop;
  if (io->tprev)
    io->tprev->tnext = io->tnext;
  else
    loop->timers[io->timer].head = io->tnext;
  if (io->tnext)
    io->tnext->tprev = io->tprev;
  else
    loop->timers[io->timer].tail = io->tprev;
  io->tprev = io->tnext = NULL;
  io->timer = TIMER_NONE;
}

void piston__timer_set(piston__io *io, int kind) {
  if (io->timer != TIMER_NONE)
    unlink_timer(io);
  if (kind == TIMER_NONE)
    return;
  piston_loop *loop = io->loop;
  io->timer = (int8_t)kind;
  io->deadline_ms = loop->now_ms + loop->timer_ms[kind];
  io->tprev = loop->timers[kind].tail;
  io->tnext = NULL;
  if (loop->timers[kind].tail)
    loop->timers[kind].tail->tnext = io;
  else
    loop->timers[kind].head = io;
  loop->timers[kind].tail = io;
}

void piston__timers_expire(piston_loop *loop) {
  for (int k = 0; k < TIMER__COUNT; k++) {
    piston__io *io;
    while ((io = loop->timers[k].head) && io->deadline_ms <= loop->now_ms) {
      unlink_timer(io);
      io->ops->timeout(io, k);
    }
  }
}

void piston__timers_arm(piston_loop *loop) {
  uint64_t next = 0;
  for (int k = 0; k < TIMER__COUNT; k++) {
    piston__io *h = loop->timers[k].head;
    if (h && (!next || h->deadline_ms < next))
      next = h->deadline_ms;
  }
  if (loop->stopping && (!next || loop->stop_at_ms < next))
    next = loop->stop_at_ms;
  if (loop->accept_resume_ms && (!next || loop->accept_resume_ms < next))
    next = loop->accept_resume_ms;
  /* A later head than the armed one means the old head went away: let the
   * timer fire early and re-arm then, rather than pay a syscall now. */
  if (next == loop->timer_armed_ms ||
      (next && loop->timer_armed_ms && next > loop->timer_armed_ms &&
       loop->timer_armed_ms > loop->now_ms))
    return;
  struct itimerspec its = {0};
  if (next) {
    uint64_t now = loop->now_ms;
    /* +1: the coarse clock may read a tick early when the timer fires */
    uint64_t in = next > now ? next - now + 1 : 1;
    its.it_value.tv_sec = (time_t)(in / 1000);
    its.it_value.tv_nsec = (long)(in % 1000) * 1000000;
  }
  timerfd_settime(loop->tfd, 0, &its, NULL);
  loop->timer_armed_ms = next;
}
