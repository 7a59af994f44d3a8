/* Connection timeouts. Each kind has one list; all entries of a list share a
 * duration, so a list is sorted by deadline just by appending, and setting,
 * moving or clearing a timer is O(1). One timerfd per loop is armed for the
 * earliest head, and only re-armed when that changes, so busy keep-alive
 * traffic costs no timer syscalls. */
#define _GNU_SOURCE
#include "internal.h"

#include <sys/timerfd.h>
#include <time.h>

#define LINGER_MS 2000

uint64_t piston__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t duration(const piston_server *s, int kind) {
  switch (kind) {
  case TIMER_HEAD: return (uint64_t)s->opt[PISTON_OPT_HEAD_TIMEOUT_MS];
  case TIMER_BODY: return (uint64_t)s->opt[PISTON_OPT_BODY_TIMEOUT_MS];
  case TIMER_IDLE: return (uint64_t)s->opt[PISTON_OPT_IDLE_TIMEOUT_MS];
  case TIMER_WRITE: return (uint64_t)s->opt[PISTON_OPT_WRITE_TIMEOUT_MS];
  case TIMER_HANDLER: return (uint64_t)s->opt[PISTON_OPT_HANDLER_TIMEOUT_MS];
  default: return LINGER_MS;
  }
}

static void unlink_timer(piston__conn *c) {
  piston__timer_list *l = &c->loop->timers[c->timer];
  if (c->tprev)
    c->tprev->tnext = c->tnext;
  else
    l->head = c->tnext;
  if (c->tnext)
    c->tnext->tprev = c->tprev;
  else
    l->tail = c->tprev;
  c->tprev = c->tnext = NULL;
  c->timer = TIMER_NONE;
}

void piston__timer_set(piston__conn *c, int kind) {
  if (c->timer != TIMER_NONE)
    unlink_timer(c);
  if (kind == TIMER_NONE)
    return;
  piston_loop *loop = c->loop;
  piston__timer_list *l = &loop->timers[kind];
  c->timer = (int8_t)kind;
  c->deadline_ms = loop->now_ms + duration(loop->srv, kind);
  c->tprev = l->tail;
  c->tnext = NULL;
  if (l->tail)
    l->tail->tnext = c;
  else
    l->head = c;
  l->tail = c;
}

void piston__timers_expire(piston_loop *loop) {
  for (int k = 0; k < TIMER__COUNT; k++) {
    piston__timer_list *l = &loop->timers[k];
    while (l->head && l->head->deadline_ms <= loop->now_ms) {
      piston__conn *c = l->head;
      unlink_timer(c);
      piston__conn_timeout(c, k);
    }
  }
}

void piston__timers_arm(piston_loop *loop) {
  uint64_t next = 0;
  for (int k = 0; k < TIMER__COUNT; k++) {
    piston__conn *h = loop->timers[k].head;
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
