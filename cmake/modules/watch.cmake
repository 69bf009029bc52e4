# Watch: `pruvan-bridge watch`, a live view of the results topic (pb_watch).
# The aggregation and rendering (watch_view.c) are pure and tested from
# fixture records; the end-to-end test runs --once against librdkafka's
# mock cluster inside the test process, so it needs no broker.
add_library(pb_watch STATIC src/ops/watch.c src/ops/watch_view.c)
target_include_directories(pb_watch PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_watch PUBLIC pb_kafka_conf pb_base PkgConfig::RDKAFKA
                      PkgConfig::JANSSON)

pb_unit_test(test_watch tests/unit/test_watch.c pb_watch Threads::Threads)
# So the test also finds its fixtures when run by hand, outside ctest.
target_compile_definitions(test_watch PRIVATE
  PB_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
