# Relay web service: the optional HTTP endpoint (libmicrohttpd, thread per
# connection) Pruvan's integration calls (validate, getWorkOrders, status,
# uploadPictures), writing each relayed item onto the inbound topic through
# its own idempotent producer and reading learned keys and the change index
# from Redis (pb_relay; pure parts in relay_items.c). Uses the rules
# library's inbound parser so what it writes is what the worker accepts,
# the ops module's listen-address parser, and libcrypto for SHA-1/SHA-256.
add_library(pb_relay STATIC src/relay/relay.c src/relay/relay_items.c
  src/relay/relay_mpend.c)
target_include_directories(pb_relay PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(pb_relay PUBLIC pb_kafka_conf pb_produce pb_rules pb_ops pb_metrics pb_config
  pb_state pb_base PkgConfig::RDKAFKA PkgConfig::MHD PkgConfig::JANSSON PkgConfig::CRYPTO
  Threads::Threads)

pb_unit_test(test_relay tests/unit/test_relay.c pb_relay PkgConfig::CURL)

# The relay's integration suites check media hashes and SHA-1 passwords.
foreach(t it_test_relay it_test_relay_pushkey it_test_relay_orders)
  if(TARGET ${t})
    target_link_libraries(${t} PRIVATE PkgConfig::CRYPTO)
  endif()
endforeach()
