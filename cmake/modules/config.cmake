# Configuration: load, validate (JSON paths in errors), secrets, describe.
# Redis connections (TCP, unix, TLS with OpenSSL, ACL users, Sentinel);
# the configuration parses redis.url with it.
find_package(OpenSSL REQUIRED)
add_library(pb_redis_conn STATIC src/io/redis_conn.c src/io/redis_cluster.c
            src/io/redis_reply.c)
target_include_directories(pb_redis_conn PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_redis_conn PUBLIC pb_base PkgConfig::HIREDIS
  PkgConfig::CURL OpenSSL::SSL OpenSSL::Crypto)

add_library(pb_config STATIC src/config/config.c)
target_include_directories(pb_config PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_config PUBLIC pb_base pb_redis_conn PkgConfig::JANSSON)

pb_unit_test(test_config tests/unit/test_config.c pb_config)
# So the test also finds its fixtures when run by hand, outside ctest.
target_compile_definitions(test_config PRIVATE
  PB_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# The "kafka" section applied per kind of librdkafka client.
add_library(pb_kafka_conf STATIC src/config/kafka_conf.c src/io/kafka_client.c src/config/oidc.c)
target_link_libraries(pb_kafka_conf PUBLIC pb_config PkgConfig::RDKAFKA
                      PkgConfig::CURL)
pb_unit_test(test_kafka_conf tests/unit/test_kafka_conf.c pb_kafka_conf)
pb_unit_test(test_redis_conn tests/unit/test_redis_conn.c pb_config)
target_compile_definitions(test_redis_conn PRIVATE
  PB_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
