// Prometheus text for a known snapshot, and the HTTP endpoints serving it.
#include <gtest/gtest.h>

#include <httplib.h>

#include "http.hpp"
#include "metrics.hpp"

namespace mmgen::broker::testing {
namespace {

MetricsSnapshot sample() {
  MetricsSnapshot m;
  ServiceMetrics s;
  s.service = "text";
  s.queued = 3;
  s.running = 2;
  s.workers_alive = 1;
  s.submitted = 10;
  s.succeeded = 5;
  s.dispatch_latency.observe(0.0002);
  s.dispatch_latency.observe(2.0);
  m.services.push_back(s);
  m.workers_lost = 4;
  return m;
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(BrokerMetrics, PrometheusText) {
  const std::string t = render_prometheus(sample());
  EXPECT_TRUE(has_line(t, "mmgen_jobs{service=\"text\",state=\"queued\"} 3")) << t;
  EXPECT_TRUE(has_line(t, "mmgen_jobs{service=\"text\",state=\"running\"} 2"));
  EXPECT_TRUE(has_line(t, "mmgen_queue_depth{service=\"text\"} 3"));
  EXPECT_TRUE(has_line(t, "mmgen_workers_alive{service=\"text\"} 1"));
  EXPECT_TRUE(has_line(t, "mmgen_jobs_submitted_total{service=\"text\"} 10"));
  EXPECT_TRUE(has_line(t, "mmgen_jobs_finished_total{service=\"text\",state=\"succeeded\"} 5"));
  EXPECT_TRUE(has_line(t, "mmgen_dispatch_latency_seconds_bucket{service=\"text\",le=\"0.0005\"} 1"));
  EXPECT_TRUE(has_line(t, "mmgen_dispatch_latency_seconds_bucket{service=\"text\",le=\"5\"} 2"));
  EXPECT_TRUE(has_line(t, "mmgen_dispatch_latency_seconds_bucket{service=\"text\",le=\"+Inf\"} 2"));
  EXPECT_TRUE(has_line(t, "mmgen_dispatch_latency_seconds_count{service=\"text\"} 2"));
  EXPECT_TRUE(has_line(t, "mmgen_workers_lost_total 4"));
  EXPECT_TRUE(has_line(t, "# TYPE mmgen_dispatch_latency_seconds histogram"));
}

TEST(BrokerMetrics, LabelValuesAreEscaped) {
  MetricsSnapshot m;
  ServiceMetrics s;
  s.service = "we\"ird\\";
  m.services.push_back(s);
  EXPECT_NE(render_prometheus(m).find("service=\"we\\\"ird\\\\\""), std::string::npos);
}

TEST(BrokerHttp, HealthReadinessAndMetrics) {
  HttpServer server;
  const int port = server.start("127.0.0.1", 0);
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);

  auto health = client.Get("/healthz");
  ASSERT_TRUE(health) << "no answer from /healthz";
  EXPECT_EQ(health->status, 200);
  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503) << "not ready before the loop says so";

  server.publish(sample());
  server.set_ready(true);
  ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("mmgen_queue_depth{service=\"text\"} 3"), std::string::npos);
  server.stop();
}

}  // namespace
}  // namespace mmgen::broker::testing
