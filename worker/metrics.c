/* metrics: placeholder until the operations issue lands (see metrics.h). */
#include "metrics.h"

#include "log.h"

int rq_metrics_start(struct rq_engine *eng, const char *addr) {
  (void)eng;
  rq_logf(RQ_LOG_WARN, "--metrics %s: metrics are not implemented in this build yet", addr);
  return 0;
}
void rq_metrics_stop(struct rq_engine *eng) { (void)eng; }
void rq_metrics_final(struct rq_engine *eng, const char *state, const char *route, const char *tenant,
                      const char *error, int64_t ms) {
  (void)eng, (void)state, (void)route, (void)tenant, (void)error, (void)ms;
}
void rq_metrics_transaction(struct rq_engine *eng, const char *route, double seconds, int ok) {
  (void)eng, (void)route, (void)seconds, (void)ok;
}
void rq_metrics_parked(struct rq_engine *eng, const char *state, const char *reason) {
  (void)eng, (void)state, (void)reason;
}
void rq_metrics_fetched(struct rq_engine *eng, size_t n) { (void)eng, (void)n; }
