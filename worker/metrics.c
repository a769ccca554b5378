/* metrics: placeholder until the operations issue lands. */
#include "metrics.h"

#include "log.h"

int rq_metrics_start(struct rq_engine *eng, const char *addr) {
  (void)eng;
  rq_logf(RQ_LOG_WARN, "--metrics %s: metrics are not implemented in this build yet", addr);
  return 0;
}
