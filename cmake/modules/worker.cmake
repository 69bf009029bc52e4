# The worker: pipeline and the pruvan-bridge binary. Named to sort after
# the modules it links (config, core, ops, rules).
add_library(pb_pipeline STATIC src/pipeline.c)
target_link_libraries(pb_pipeline PUBLIC pb_base pb_tracker pb_state pb_pusher
  pb_rules pb_metrics PkgConfig::RDKAFKA PkgConfig::CURL PkgConfig::JANSSON)

add_library(pb_replay STATIC src/replay.c)
target_link_libraries(pb_replay PUBLIC pb_base pb_config PkgConfig::RDKAFKA)

add_executable(pruvan-bridge src/main.c)
target_compile_definitions(pruvan-bridge PRIVATE PB_VERSION="${PROJECT_VERSION}")
target_link_libraries(pruvan-bridge PRIVATE pb_pipeline pb_replay pb_watch pb_ops
  pb_metrics pb_config pb_state pb_base PkgConfig::RDKAFKA PkgConfig::CURL Threads::Threads)
install(TARGETS pruvan-bridge RUNTIME DESTINATION bin)
