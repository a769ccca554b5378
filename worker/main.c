/*
 * relayq-worker: wires config, logging, the engine and the loop. Nothing
 * else lives here.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"


int main(int argc, char **argv) {
  struct rq_config cfg;
  int r = rq_config_load(&cfg, argc, argv);
  if (r) {
    rq_config_free(&cfg);
    return r > 0 ? 0 : 2;
  }
  signal(SIGPIPE, SIG_IGN);
  rq_log_init(cfg.log_format, cfg.log_level, cfg.worker_id);
  char desc[1024];
  rq_config_describe(&cfg, desc, sizeof desc);
  RQ_LOG_FIELDS(RQ_LOG_INFO, "relayq-worker starting", {"version", RELAYQ_VERSION}, {"config", desc});
  if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
    rq_logf(RQ_LOG_ERROR, "libcurl failed to initialise");
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct rq_engine eng;
  if (rq_engine_init(&eng, &loop, &cfg)) {
    rq_config_free(&cfg);
    return 2;
  }
  if (cfg.metrics_addr && rq_metrics_start(&eng, cfg.metrics_addr)) {
    eng.exit_code = 2;
    rq_engine_stop(&eng);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  int code = eng.exit_code;
  rq_engine_free(&eng);
  if (uv_loop_close(&loop)) rq_logf(RQ_LOG_WARN, "event loop closed with handles still open");
  curl_global_cleanup();
  rq_config_free(&cfg);
  return code;
}
