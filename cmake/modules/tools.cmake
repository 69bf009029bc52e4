# pb-mock-kafka: librdkafka's mock cluster in a process of its own, for the
# demo, the benchmarks and hand-testing.
add_executable(pb-mock-kafka tools/mock-kafka.c)
target_link_libraries(pb-mock-kafka PRIVATE pb_base PkgConfig::RDKAFKA)
